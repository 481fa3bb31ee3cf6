from pmsd.god.daemon import main

raise SystemExit(main())
