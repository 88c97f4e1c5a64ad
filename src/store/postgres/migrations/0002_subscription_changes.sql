-- The change log the replicated store follows (`ReplicatedStore`).
--
-- Every statement that writes to `subscriptions`, whoever runs it, first locks the
-- one-row head table (a BEFORE statement trigger, so the head is always the first lock a
-- writer takes and writers cannot deadlock on it). Each row it changes takes the next
-- version under that lock, which is held until commit: versions are gapless and in
-- commit order, and an instance that sees version n + 2 after n knows it missed one.
-- Each change is logged with the row it added or removed; after the statement, the new
-- head version is announced with NOTIFY on the channel named after the schema (delivered
-- at commit, never for a rolled-back write). The log keeps the last 10,000 changes (an
-- instance further behind reloads everything).
--
-- The functions run as their owner (SECURITY DEFINER, with a fixed search_path), so a
-- role that may write `subscriptions` needs no privilege on the log to do so.
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

CREATE FUNCTION {schema}.subscription_changes_lock() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM 1 FROM {schema}.subscription_changes_head FOR UPDATE;
    RETURN NULL;
END
$$;

CREATE FUNCTION {schema}.subscription_changes_log(
    operation "char", changed {schema}.subscriptions
) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    next_version bigint;
BEGIN
    UPDATE {schema}.subscription_changes_head SET version = version + 1
        RETURNING version INTO next_version;
    INSERT INTO {schema}.subscription_changes
        (version, operation, id, entity_type_name, action_name, endpoint, template_name, created_at)
        VALUES (next_version, operation, changed.id, changed.entity_type_name, changed.action_name,
                changed.endpoint, changed.template_name, changed.created_at);
    -- Versions have no gaps: the one change that falls out of the log, found by its key
    -- (a range would be planned as a scan of the whole log whenever its statistics lag).
    DELETE FROM {schema}.subscription_changes WHERE version = next_version - 10000;
END
$$;

CREATE FUNCTION {schema}.subscription_changes_row() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        PERFORM {schema}.subscription_changes_log('D', OLD);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM {schema}.subscription_changes_log('I', NEW);
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION {schema}.subscription_changes_announce() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    head bigint;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM {schema}.subscription_changes_log('R', NULL);
    END IF;
    SELECT version INTO head FROM {schema}.subscription_changes_head;
    PERFORM pg_notify(TG_TABLE_SCHEMA, head::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER subscription_changes_lock
    BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {schema}.subscriptions
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.subscription_changes_lock();
CREATE TRIGGER subscription_changes_row
    AFTER INSERT OR UPDATE OR DELETE ON {schema}.subscriptions
    FOR EACH ROW EXECUTE FUNCTION {schema}.subscription_changes_row();
CREATE TRIGGER subscription_changes_announce
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {schema}.subscriptions
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.subscription_changes_announce();

-- Statistics from the start: a one-row table the planner has never analysed is taken for
-- thousands of rows, which makes the follower's query look expensive enough to compile.
ANALYZE {schema}.subscription_changes_head;
ANALYZE {schema}.subscription_changes;
