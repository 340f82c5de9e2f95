"""STAND-INS for journeys other branches build, used only inside one test's worker."""
