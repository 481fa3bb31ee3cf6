from pmsd.cli.main import main

raise SystemExit(main())
