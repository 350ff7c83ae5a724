-- SCIM clients look users up by userName (case-insensitive) and externalId (the federation id).
CREATE INDEX accounts_by_username_ci ON accounts (org_id, lower(username));
CREATE INDEX accounts_by_federation_id ON accounts (org_id, json_extract(attributes, '$.FederationIdentifier'));
