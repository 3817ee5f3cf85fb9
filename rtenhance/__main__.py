"""``python -m rtenhance`` runs the command line."""

from rtenhance.cli import main

raise SystemExit(main())
