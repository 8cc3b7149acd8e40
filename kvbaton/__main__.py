from kvbaton.cli import main

raise SystemExit(main())
