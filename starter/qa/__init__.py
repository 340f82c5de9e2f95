"""Journey QA: `journeys preview`, `journeys test-send` and `journeys simulate`.

Seed 000's testing checklist ("send test to yourself first, verify all links
work, check merge tags render correctly, confirm triggers fire properly") as
commands, with the same rendering code, policy and worker as production:

- `preview.py`: render every message of a journey for a contact and check it
  (UTM on every link, unsubscribe link, postal address, fallbacks);
- `test_send.py`: send one rendered message, marked as a test, to an address;
- `simulate.py`: run the real journey on the time-skipping test server and
  read its timeline (also what the journey authors' test kit, `tests/kit.py`,
  runs journeys with);
- `commands.py`: the Typer commands (`register` adds them to the CLI).

Everything heavy (workflows, activities, the test server) is imported inside
the commands, so the CLI's other commands stay fast.
"""
