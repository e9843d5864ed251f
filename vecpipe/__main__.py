from vecpipe.cli.main import main

raise SystemExit(main())
