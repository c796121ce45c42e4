from lbproxy.cli import main

raise SystemExit(main())
