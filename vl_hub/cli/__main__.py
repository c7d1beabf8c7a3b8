from vl_hub.cli.main import main

raise SystemExit(main())
