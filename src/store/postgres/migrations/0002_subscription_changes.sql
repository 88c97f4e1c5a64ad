-- The change log the replicated store follows (`ReplicatedStore`). Every write to
-- `subscriptions`, whoever makes it, takes the next version from the one-row head table
-- inside its own transaction: the head's row lock is held until commit, so versions are
-- gapless and in commit order, and an instance that sees version n + 2 after n knows it
-- missed one. Each change is logged with the row it added or removed, and announced on
-- the channel named after the schema with the version as payload (delivered at commit,
-- never for a rolled-back write).
CREATE TABLE {schema}.subscription_changes_head (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    version bigint NOT NULL
);
INSERT INTO {schema}.subscription_changes_head (version) VALUES (0);

CREATE TABLE {schema}.subscription_changes (
    version bigint PRIMARY KEY,
    -- 'I' added the row, 'D' removed it, 'R' emptied the table (TRUNCATE).
    operation "char" NOT NULL CHECK (operation IN ('I', 'D', 'R')),
    id uuid,
    entity_type_name text,
    action_name text,
    endpoint text,
    template_name text,
    created_at timestamptz,
    changed_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION {schema}.subscription_changes_next(
    operation "char", changed {schema}.subscriptions, channel text
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    next_version bigint;
BEGIN
    UPDATE {schema}.subscription_changes_head SET version = version + 1
        RETURNING version INTO next_version;
    INSERT INTO {schema}.subscription_changes
        (version, operation, id, entity_type_name, action_name, endpoint, template_name, created_at)
        VALUES (next_version, operation, changed.id, changed.entity_type_name, changed.action_name,
                changed.endpoint, changed.template_name, changed.created_at);
    -- The log keeps the last 10,000 changes; an instance further behind reloads everything.
    DELETE FROM {schema}.subscription_changes WHERE version <= next_version - 10000;
    PERFORM pg_notify(channel, next_version::text);
END
$$;

CREATE FUNCTION {schema}.subscription_changes_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM {schema}.subscription_changes_next('R', NULL, TG_TABLE_SCHEMA);
        RETURN NULL;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        PERFORM {schema}.subscription_changes_next('D', OLD, TG_TABLE_SCHEMA);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM {schema}.subscription_changes_next('I', NEW, TG_TABLE_SCHEMA);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER subscription_changes_rows AFTER INSERT OR UPDATE OR DELETE ON {schema}.subscriptions
    FOR EACH ROW EXECUTE FUNCTION {schema}.subscription_changes_record();
CREATE TRIGGER subscription_changes_truncate AFTER TRUNCATE ON {schema}.subscriptions
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.subscription_changes_record();
