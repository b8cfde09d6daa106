"""`python -m posekit` (also what `torchrun -m posekit` runs)."""

from posekit.cli import main

raise SystemExit(main())
