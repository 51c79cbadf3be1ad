from aws_array_plugin.cli import main

raise SystemExit(main())
