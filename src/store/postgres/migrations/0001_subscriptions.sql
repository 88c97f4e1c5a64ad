CREATE TABLE {schema}.subscriptions (
    id uuid PRIMARY KEY,
    entity_type_name text NOT NULL,
    action_name text NOT NULL,
    endpoint text NOT NULL,
    template_name text CHECK (template_name <> ''),
    template_name_folded text,
    created_at timestamptz NOT NULL,
    CHECK ((template_name IS NULL) = (template_name_folded IS NULL))
);
CREATE UNIQUE INDEX subscriptions_identity ON {schema}.subscriptions
    (entity_type_name, action_name, endpoint, (coalesce(template_name, '')));
CREATE INDEX subscriptions_dispatch ON {schema}.subscriptions
    (entity_type_name, action_name, template_name);
CREATE INDEX subscriptions_newest ON {schema}.subscriptions (created_at DESC, id);
