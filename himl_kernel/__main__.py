"""``python -m himl_kernel`` is the ``himl`` command."""

from himl_kernel.cli.main import main

raise SystemExit(main())
