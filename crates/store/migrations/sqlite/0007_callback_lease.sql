-- A node dialing a call-back holds it under a lease it renews; a claim whose lease ran out
-- (its node died) goes back to `pending` for any node to dial.
ALTER TABLE callbacks ADD COLUMN lease_until TEXT;
CREATE INDEX callbacks_lease ON callbacks (lease_until) WHERE status = 'dialing';
