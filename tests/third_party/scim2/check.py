"""scim2-tester (PyPI `scim2-cli`), unchanged, against a Provost org served on loopback.

Usage: SCIM_TOKEN=... python check.py BASE_URL

Every check must succeed, except the CRUD and PATCH checks (each creates its object first) that Salesforce's own rules
refuse, each with the exact refusal expected:
- Users: the tester makes up a userName that is not shaped like an email address, and
  Salesforce requires usernames to be (the create is refused before Salesforce is called),
  and a profileId (writable: it changes the user's profile) that names no profile of the org;
- Groups: they are Salesforce's permission sets, permission set groups and public groups,
  authored in Setup, not through SCIM;
- Entitlements and Roles: read-only catalogs.
Exits 1 on any other failure, printing every result.
"""

import os
import sys

from scim2_cli.session import Session
from scim2_tester import Status, check_server

REFUSED = {
    "User": ("must have the form of an email address", "with profile named"),
    "Group": ("does not create or delete Groups",),
    "Entitlement": ("read-only catalog",),
    "Role": ("read-only catalog",),
}


def main() -> int:
    url = sys.argv[1]
    token = os.environ["SCIM_TOKEN"]
    client = Session(
        url=url,
        headers={"Authorization": f"Bearer {token}"},
        verify=True,
        schemas=None,
        resource_types=None,
        service_provider_config=None,
    ).client
    results = check_server(client)
    passed, expected, unexpected = 0, 0, []
    for result in results:
        line = f"{result.status.name} {result.resource_type or '-'} {result.title}: {result.reason or ''}"
        print(line)
        if result.status == Status.SUCCESS:
            passed += 1
        elif (
            result.resource_type in REFUSED
            and any(r in (result.reason or "") for r in REFUSED[result.resource_type])
            and any(t.startswith(("crud", "patch")) for t in (result.tags or []))
        ):
            expected += 1
        else:
            unexpected.append(line)
    print(f"\nscim2-tester: {passed} passed, {expected} refused as Salesforce requires, {len(unexpected)} unexpected")
    for line in unexpected:
        print(f"UNEXPECTED {line}")
    return 0 if not unexpected and passed >= 20 else 1


if __name__ == "__main__":
    sys.exit(main())
