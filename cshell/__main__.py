from cshell.cli import main

raise SystemExit(main())
