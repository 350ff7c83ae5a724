#!/usr/bin/env python3
"""What an admin would otherwise run: export internal users, permission sets, public groups,
permission set assignments, group members and frozen logins to CSV with simple-salesforce,
one query at a time, as such scripts do. `benches/sync.rs` runs it against the emulator and
prints its wall time, rows, calls and peak memory.

    python3 benches/export_script.py INSTANCE_URL ACCESS_TOKEN OUT_DIR
"""
import csv
import os
import resource
import sys
import time

from simple_salesforce import Salesforce

QUERIES = {
    "users": "SELECT Id, Username, Email, Name, IsActive, UserType, ProfileId, UserRoleId, "
    "ManagerId, LastLoginDate FROM User WHERE UserType NOT IN ('PowerPartner', "
    "'PowerCustomerSuccess', 'CustomerSuccess', 'CspLitePortal', 'CSPLitePortal', 'Guest')",
    "permission_sets": "SELECT Id, Name, Label, IsOwnedByProfile, ProfileId, "
    "PermissionsModifyAllData, PermissionsViewAllData FROM PermissionSet",
    "groups": "SELECT Id, Name, DeveloperName, Type FROM Group WHERE Type = 'Regular'",
    "assignments": "SELECT Id, AssigneeId, PermissionSetId, PermissionSetGroupId "
    "FROM PermissionSetAssignment",
    "group_members": "SELECT Id, GroupId, UserOrGroupId FROM GroupMember",
    "frozen": "SELECT Id, UserId, IsFrozen FROM UserLogin WHERE IsFrozen = true",
}


def main():
    instance_url, token, out_dir = sys.argv[1:4]
    sf = Salesforce(instance_url=instance_url, session_id=token, version="62.0")
    # The emulator answers plain HTTP on loopback; simple-salesforce assumes HTTPS.
    if instance_url.startswith("http://"):
        sf.base_url = sf.base_url.replace("https://", "http://", 1)
    started = time.perf_counter()
    rows = calls = 0
    for name, soql in QUERIES.items():
        answer = sf.query(soql)
        calls += 1
        with open(os.path.join(out_dir, f"{name}.csv"), "w", newline="") as file:
            writer = None
            while True:
                for record in answer["records"]:
                    record.pop("attributes", None)
                    if writer is None:
                        writer = csv.DictWriter(file, fieldnames=list(record))
                        writer.writeheader()
                    writer.writerow(record)
                    rows += 1
                if answer["done"]:
                    break
                locator = answer["nextRecordsUrl"].rsplit("/", 1)[-1]
                answer = sf.query_more(locator, identifier_is_url=False)
                calls += 1
    seconds = time.perf_counter() - started
    peak_mb = peak_rss_mb()
    print(f"{seconds:7.2f} s  {rows} rows to CSV  {calls} API calls  peak RSS {peak_mb:6.1f} MB")


def peak_rss_mb():
    """This process's own peak: `ru_maxrss` also counts what the process that started it held
    when it did (Linux carries it across fork and exec), which made the script's figure the
    bench's own once the bench had synced."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
