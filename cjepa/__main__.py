from cjepa.cli import main

raise SystemExit(main())
