from decimal import Decimal

import pytest

from aws_array_plugin.quantities import (
    FARGATE_MEMORY_MIB,
    QuantityError,
    fargate_memory_mib,
    fargate_resources,
    gpus,
    memory_mib,
    parse_quantity,
    vcpus,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", Decimal(1)),
        ("0", Decimal(0)),
        ("500m", Decimal("0.5")),
        ("1500m", Decimal("1.5")),
        ("15000m", Decimal(15)),
        ("0.25", Decimal("0.25")),
        (".5", Decimal("0.5")),
        ("2.", Decimal(2)),
        ("+2", Decimal(2)),
        ("-1", Decimal(-1)),
        (" 2 ", Decimal(2)),
        ("100n", Decimal("0.0000001")),
        ("5u", Decimal("0.000005")),
        ("1k", Decimal(1000)),
        ("200M", Decimal(200_000_000)),
        ("64G", Decimal(64 * 10**9)),
        ("1T", Decimal(10**12)),
        ("1P", Decimal(10**15)),
        ("1E", Decimal(10**18)),
        ("1Ki", Decimal(1024)),
        ("512Mi", Decimal(512 * 2**20)),
        ("1.5Gi", Decimal(3 * 2**29)),
        ("1Ti", Decimal(2**40)),
        ("1Pi", Decimal(2**50)),
        ("1Ei", Decimal(2**60)),
        ("1e3", Decimal(1000)),
        ("1E3", Decimal(1000)),
        ("1.5e3", Decimal(1500)),
        ("1e+3", Decimal(1000)),
        ("25e-2", Decimal("0.25")),
        ("123456789012345678901234567890Ei", Decimal(123456789012345678901234567890 * 2**60)),  # exact
    ],
)
def test_parse_quantity(text: str, expected: Decimal) -> None:
    assert parse_quantity(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid quantity '': expected a number with an optional suffix"),
        ("abc", "invalid quantity 'abc': expected a number"),
        ("Gi", "invalid quantity 'Gi': expected a number"),
        ("1 Gi", "invalid quantity '1 Gi': expected a number"),
        ("1.2.3", "invalid quantity '1.2.3': expected a number"),
        ("--1", "invalid quantity '--1': expected a number"),
        ("1K", "invalid quantity '1K': unknown suffix 'K' (did you mean 'k' (1000) or 'Ki' (1024)?)"),
        ("4GB", "invalid quantity '4GB': unknown suffix 'GB' (did you mean 'G'?)"),
        ("512MiB", "invalid quantity '512MiB': unknown suffix 'MiB' (did you mean 'Mi'?)"),
        ("1gi", "invalid quantity '1gi': unknown suffix 'gi'; use n, u, m, k, M, G"),
        ("1e", "invalid quantity '1e': unknown suffix 'e'; use"),
        ("1e+", "invalid quantity '1e+': unknown suffix 'e+'; use"),
        ("1Mi3", "invalid quantity '1Mi3': unknown suffix 'Mi3'; use"),
        ("1e99", "invalid quantity '1e99': exponent 99 is out of range"),
        ("1e-31", "invalid quantity '1e-31': exponent -31 is out of range"),
    ],
)
def test_parse_quantity_rejects(text: str, message: str) -> None:
    with pytest.raises(QuantityError) as info:
        parse_quantity(text)
    assert str(info.value).startswith(message)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("text", "fargate", "expected"),
    [
        # EC2: whole vCPUs, rounded up, at least 1 (the Go plugin's transformer_test cases).
        ("500m", False, "1"),
        ("1", False, "1"),
        ("1500m", False, "2"),
        ("15000m", False, "15"),
        ("100m", False, "1"),
        ("1e1", False, "10"),
        ("1k", False, "1000"),
        # Fargate: the smallest task size that holds the request.
        ("1m", True, "0.25"),
        ("250m", True, "0.25"),
        ("251m", True, "0.5"),
        ("0.5", True, "0.5"),
        ("750m", True, "1"),
        ("1", True, "1"),
        ("1.1", True, "2"),
        ("3", True, "4"),
        ("5", True, "8"),
        ("8", True, "8"),
        ("9", True, "16"),
        ("16", True, "16"),
    ],
)
def test_vcpus(text: str, fargate: bool, expected: str) -> None:
    assert vcpus(text, fargate=fargate) == expected


@pytest.mark.parametrize(
    ("text", "fargate", "message"),
    [
        ("0", False, "cpu '0' must be greater than zero"),
        ("-1", True, "cpu '-1' must be greater than zero"),
        ("17", True, "cpu '17' is more than Fargate allows (at most 16 vCPU)"),
        ("two", False, "invalid quantity 'two'"),
    ],
)
def test_vcpus_rejects(text: str, fargate: bool, message: str) -> None:
    with pytest.raises(QuantityError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        vcpus(text, fargate=fargate)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1Gi", 1024),
        ("1024Mi", 1024),
        ("512Mi", 512),
        ("1G", 954),  # 10^9 bytes is 953.67 MiB: rounded up, never less than asked
        ("500M", 477),
        ("64G", 61036),
        ("200", 1),  # bytes
        ("1", 1),
        ("1048577", 2),
        ("1.5Gi", 1536),
        ("4Ki", 1),
        ("2e9", 1908),
        ("1Ei", 2**40),
        ("100m", 1),  # a tenth of a byte still needs a MiB
    ],
)
def test_memory_mib(text: str, expected: int) -> None:
    assert memory_mib(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "memory '0' must be greater than zero"),
        ("-1Gi", "memory '-1Gi' must be greater than zero"),
        ("1GB", "invalid quantity '1GB': unknown suffix 'GB' (did you mean 'G'?)"),
    ],
)
def test_memory_mib_rejects(text: str, message: str) -> None:
    with pytest.raises(QuantityError) as info:
        memory_mib(text)
    assert str(info.value) == message


@pytest.mark.parametrize(("text", "expected"), [("0", 0), ("1", 1), ("4", 4), ("1e1", 10), ("2000m", 2)])
def test_gpus(text: str, expected: int) -> None:
    assert gpus(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("500m", "gpu '500m' must be a whole number of GPUs"),
        ("1.5", "gpu '1.5' must be a whole number of GPUs"),
        ("-1", "gpu '-1' must not be negative"),
        ("one", "invalid quantity 'one': expected a number"),
    ],
)
def test_gpus_rejects(text: str, message: str) -> None:
    with pytest.raises(QuantityError) as info:
        gpus(text)
    assert str(info.value).startswith(message)


def test_fargate_memory_table_matches_aws() -> None:
    # The AWS Batch ResourceRequirement documentation, spelled out.
    assert FARGATE_MEMORY_MIB["0.25"] == (512, 1024, 2048)
    assert FARGATE_MEMORY_MIB["0.5"] == (1024, 2048, 3072, 4096)
    assert FARGATE_MEMORY_MIB["1"] == (2048, 3072, 4096, 5120, 6144, 7168, 8192)
    assert FARGATE_MEMORY_MIB["2"] == tuple(range(4096, 16385, 1024))
    assert len(FARGATE_MEMORY_MIB["2"]) == 13
    assert FARGATE_MEMORY_MIB["4"][0] == 8192 and FARGATE_MEMORY_MIB["4"][-1] == 30720
    assert len(FARGATE_MEMORY_MIB["4"]) == 23
    assert FARGATE_MEMORY_MIB["8"] == (
        16384, 20480, 24576, 28672, 32768, 36864, 40960, 45056, 49152, 53248, 57344, 61440,
    )  # fmt: skip
    assert FARGATE_MEMORY_MIB["16"] == (
        32768, 40960, 49152, 57344, 65536, 73728, 81920, 90112, 98304, 106496, 114688, 122880,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("vcpu", "mib", "expected"),
    [
        ("0.25", 1, 512),
        ("0.25", 512, 512),
        ("0.25", 513, 1024),
        ("0.25", 1025, 2048),
        ("0.25", 2048, 2048),
        ("0.5", 512, 1024),  # raised to the size's minimum
        ("0.5", 3000, 3072),
        ("1", 954, 2048),
        ("1", 8192, 8192),
        ("2", 10000, 10240),
        ("4", 30000, 30720),
        ("8", 16385, 20480),
        ("8", 61440, 61440),
        ("16", 1, 32768),
        ("16", 100000, 106496),
        ("1.0", 3000, 3072),  # "1.0" is the size "1"
        ("0.50", 3000, 3072),
    ],
)
def test_fargate_memory_mib(vcpu: str, mib: int, expected: int) -> None:
    assert fargate_memory_mib(vcpu, mib) == expected


@pytest.mark.parametrize(
    ("vcpu", "mib", "message"),
    [
        ("0.25", 2049, "2049 MiB is more memory than Fargate allows with 0.25 vCPU (at most 2048 MiB)"),
        ("4", 30721, "30721 MiB is more memory than Fargate allows with 4 vCPU (at most 30720 MiB)"),
        ("3", 4096, "'3' is not a Fargate vCPU size (0.25, 0.5, 1, 2, 4, 8, 16)"),
        ("lots", 4096, "'lots' is not a Fargate vCPU size (0.25, 0.5, 1, 2, 4, 8, 16)"),
    ],
)
def test_fargate_memory_mib_rejects(vcpu: str, mib: int, message: str) -> None:
    with pytest.raises(QuantityError) as info:
        fargate_memory_mib(vcpu, mib)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("cpu", "memory", "expected"),
    [
        ("250m", "512Mi", ("0.25", 512)),
        ("250m", "1G", ("0.25", 1024)),
        ("250m", "3Gi", ("0.5", 3072)),  # too much memory for 0.25 vCPU: the vCPU size grows
        ("250m", "5Gi", ("1", 5120)),
        ("500m", "256Mi", ("0.5", 1024)),
        ("1", "1Gi", ("1", 2048)),
        ("1", "1024Mi", ("1", 2048)),
        ("2", "16Gi", ("2", 16384)),
        ("2", "17Gi", ("4", 17408)),
        ("4", "31Gi", ("8", 32768)),
        ("1", "60Gi", ("8", 61440)),
        ("8", "61441Mi", ("16", 65536)),
        ("16", "120Gi", ("16", 122880)),
        ("3", "1Gi", ("4", 8192)),
    ],
)
def test_fargate_resources(cpu: str, memory: str, expected: tuple[str, int]) -> None:
    assert fargate_resources(cpu, memory) == expected


@pytest.mark.parametrize(
    ("cpu", "memory", "message"),
    [
        (
            "1",
            "121Gi",
            "memory '121Gi' (123904 MiB) is more than Fargate allows (at most 122880 MiB, with 16 vCPU)",
        ),
        ("32", "1Gi", "cpu '32' is more than Fargate allows (at most 16 vCPU)"),
        ("1", "0", "memory '0' must be greater than zero"),
        ("1x", "1Gi", "invalid quantity '1x': unknown suffix 'x'; use"),
    ],
)
def test_fargate_resources_rejects(cpu: str, memory: str, message: str) -> None:
    with pytest.raises(QuantityError) as info:
        fargate_resources(cpu, memory)
    assert str(info.value).startswith(message)
