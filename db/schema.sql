\restrict dbmate

-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: btree_gin; Type: EXTENSION; Schema: -; Owner: -
--

CREATE EXTENSION IF NOT EXISTS btree_gin WITH SCHEMA public;


--
-- Name: EXTENSION btree_gin; Type: COMMENT; Schema: -; Owner: -
--

COMMENT ON EXTENSION btree_gin IS 'support for indexing common datatypes in GIN';


--
-- Name: pg_trgm; Type: EXTENSION; Schema: -; Owner: -
--

CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;


--
-- Name: EXTENSION pg_trgm; Type: COMMENT; Schema: -; Owner: -
--

COMMENT ON EXTENSION pg_trgm IS 'text similarity measurement and index searching based on trigrams';


--
-- Name: count_task_status(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.count_task_status() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    my_shard integer := pg_backend_pid() % 16;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO task_counts AS c (status, priority, shard, n)
        VALUES (OLD.status, OLD.priority, my_shard, -1)
        ON CONFLICT (status, priority, shard) DO UPDATE SET n = c.n - 1;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO task_counts AS c (status, priority, shard, n)
        VALUES (NEW.status, NEW.priority, my_shard, 1)
        ON CONFLICT (status, priority, shard) DO UPDATE SET n = c.n + 1;
    END IF;
    RETURN NULL;
END;
$$;


--
-- Name: notify_cancel_requested(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.notify_cancel_requested() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('task_cancel', NEW.id::text);
    RETURN NULL;
END;
$$;


--
-- Name: record_status_changes(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.record_status_changes() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    my_shard integer := pg_backend_pid() % 16;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO task_events (task_id, from_status, status, attempt, error)
        SELECT id, NULL, status, attempts, CASE WHEN status IN ('PENDING', 'FAILED') THEN error END
        FROM new_rows;
        INSERT INTO task_counts AS c (status, priority, shard, n)
        SELECT status, priority, my_shard, count(*)
        FROM new_rows
        GROUP BY status, priority
        ORDER BY status, priority
        ON CONFLICT (status, priority, shard) DO UPDATE SET n = c.n + excluded.n;
    ELSE
        WITH changed AS (
            SELECT n.id, o.status AS old_status, o.priority AS old_priority, o.attempts AS old_attempts,
                   n.status, n.priority, n.attempts, n.error, n.callback_url
            FROM new_rows n
            JOIN old_rows o ON o.id = n.id
            WHERE o.status IS DISTINCT FROM n.status
               OR o.priority IS DISTINCT FROM n.priority
        ), history AS (
            -- A task claimed straight from NEW was published before its dispatcher marked it
            -- PENDING (taskservice/handoff.py): it passed through PENDING, recorded first.
            INSERT INTO task_events (task_id, from_status, status, attempt, error)
            SELECT id, from_status, status, attempt, error
            FROM (
                SELECT 1 AS step, id, 'NEW' AS from_status, 'PENDING' AS status, old_attempts AS attempt,
                       NULL AS error
                FROM changed
                WHERE old_status = 'NEW' AND status = 'IN_PROGRESS'
                UNION ALL
                SELECT 2, id, CASE WHEN old_status = 'NEW' AND status = 'IN_PROGRESS' THEN 'PENDING'
                                   ELSE old_status END,
                       status, attempts, CASE WHEN status IN ('PENDING', 'FAILED') THEN error END
                FROM changed
                WHERE old_status IS DISTINCT FROM status
            ) AS steps
            ORDER BY step, id
        ), callbacks AS (
            -- in the status change's own transaction: no finished task loses its callback
            INSERT INTO callback_deliveries (task_id, task_status, url)
            SELECT id, status, callback_url
            FROM changed
            WHERE old_status IS DISTINCT FROM status
              AND status IN ('COMPLETED', 'FAILED', 'CANCELLED')
              AND callback_url IS NOT NULL
        ), moves AS (
            SELECT old_status AS status, old_priority AS priority, -1 AS n FROM changed
            UNION ALL
            SELECT status, priority, 1 FROM changed
        )
        INSERT INTO task_counts AS c (status, priority, shard, n)
        SELECT status, priority, my_shard, sum(n)
        FROM moves
        GROUP BY status, priority
        HAVING sum(n) <> 0
        ORDER BY status, priority
        ON CONFLICT (status, priority, shard) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END;
$$;


--
-- Name: record_task_texts(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.record_task_texts() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    INSERT INTO task_texts (task_id, created_at, name, description)
    SELECT id, created_at, name, description FROM new_rows;
    RETURN NULL;
END;
$$;


--
-- Name: settle_dependents(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.settle_dependents() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    released bigint;
BEGIN
    IF NOT EXISTS (
        SELECT 1
        FROM new_rows n
        JOIN old_rows o ON o.id = n.id
        WHERE n.status IN ('COMPLETED', 'FAILED', 'CANCELLED')
          AND o.status IN ('NEW', 'PENDING', 'IN_PROGRESS')
          AND EXISTS (SELECT 1 FROM task_dependencies d WHERE d.parent_id = n.id)
    ) THEN
        RETURN NULL;
    END IF;

    WITH completed AS (
        SELECT n.id
        FROM new_rows n
        JOIN old_rows o ON o.id = n.id
        WHERE n.status = 'COMPLETED' AND o.status IN ('NEW', 'PENDING', 'IN_PROGRESS')
    ), counted_down AS (
        UPDATE tasks c
        SET waiting_on = c.waiting_on - done.parents,
            updated_at = now()
        FROM (SELECT d.task_id, count(*) AS parents
              FROM task_dependencies d
              JOIN completed ON completed.id = d.parent_id
              GROUP BY d.task_id) AS done
        WHERE c.id = done.task_id
        RETURNING c.id, c.priority, c.run_at, c.status, c.waiting_on
    )
    INSERT INTO outbox (task_id, priority, available_at)
    SELECT id, priority, greatest(run_at, now())
    FROM counted_down
    WHERE status = 'NEW' AND waiting_on = 0;
    GET DIAGNOSTICS released = ROW_COUNT;
    IF released > 0 THEN
        -- wake the dispatchers at commit; rare enough not to matter to other commits
        PERFORM pg_notify('outbox_due', '');
    END IF;

    WITH RECURSIVE stopped AS (
        SELECT n.id, n.status
        FROM new_rows n
        JOIN old_rows o ON o.id = n.id
        WHERE n.status IN ('FAILED', 'CANCELLED') AND o.status IN ('NEW', 'PENDING', 'IN_PROGRESS')
    ), blocked (id) AS (
        SELECT d.task_id
        FROM stopped
        JOIN task_dependencies d ON d.parent_id = stopped.id
        JOIN tasks t ON t.id = d.task_id AND t.status = 'NEW'
        UNION
        SELECT d.task_id
        FROM blocked
        JOIN task_dependencies d ON d.parent_id = blocked.id
        JOIN tasks t ON t.id = d.task_id AND t.status = 'NEW'
    ), reason AS (
        -- one parent per blocked task: a stopped one, else one cancelled here too
        SELECT DISTINCT ON (d.task_id)
               d.task_id AS id, 'parent ' || d.parent_id || ' ' || coalesce(stopped.status, 'CANCELLED') AS error
        FROM task_dependencies d
        JOIN blocked ON blocked.id = d.task_id
        LEFT JOIN stopped ON stopped.id = d.parent_id
        WHERE stopped.id IS NOT NULL OR d.parent_id IN (SELECT id FROM blocked)
        ORDER BY d.task_id, stopped.id IS NULL, d.parent_id
    )
    UPDATE tasks c
    SET status = 'CANCELLED',
        error = reason.error,
        finished_at = now(),
        updated_at = now()
    FROM reason
    WHERE c.id = reason.id
      AND c.status = 'NEW';
    RETURN NULL;
END;
$$;


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: callback_attempts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.callback_attempts (
    id bigint NOT NULL,
    delivery_id uuid NOT NULL,
    attempt integer NOT NULL,
    started_at timestamp with time zone NOT NULL,
    duration_seconds double precision NOT NULL,
    status_code integer,
    error text,
    outcome text NOT NULL,
    CONSTRAINT callback_attempts_attempt_check CHECK ((attempt >= 1)),
    CONSTRAINT callback_attempts_duration_seconds_check CHECK ((duration_seconds >= (0)::double precision)),
    CONSTRAINT callback_attempts_outcome_check CHECK ((outcome = ANY (ARRAY['delivered'::text, 'retry'::text, 'failed'::text])))
);


--
-- Name: callback_attempts_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.callback_attempts ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.callback_attempts_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: callback_deliveries; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.callback_deliveries (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    task_id uuid NOT NULL,
    task_status text NOT NULL,
    url text NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    last_status_code integer,
    last_error text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    finished_at timestamp with time zone,
    CONSTRAINT callback_deliveries_attempts_check CHECK ((attempts >= 0)),
    CONSTRAINT callback_deliveries_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'delivered'::text, 'failed'::text]))),
    CONSTRAINT callback_deliveries_task_status_check CHECK ((task_status = ANY (ARRAY['COMPLETED'::text, 'FAILED'::text, 'CANCELLED'::text]))),
    CONSTRAINT finished_iff_settled CHECK (((finished_at IS NOT NULL) = (status <> 'pending'::text)))
);


--
-- Name: kind_limit_waits; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.kind_limit_waits (
    task_id uuid NOT NULL,
    kind text NOT NULL,
    refusals integer DEFAULT 1 NOT NULL,
    since timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT kind_limit_waits_refusals_check CHECK ((refusals >= 1))
);


--
-- Name: kind_limits; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.kind_limits (
    kind text NOT NULL,
    concurrency integer,
    rate_limit integer,
    rate_period_seconds integer,
    rate_per_second double precision GENERATED ALWAYS AS (((rate_limit)::double precision / (rate_period_seconds)::double precision)) STORED,
    capacity double precision GENERATED ALWAYS AS (GREATEST((1)::double precision, ((rate_limit)::double precision / (rate_period_seconds)::double precision))) STORED,
    tokens double precision DEFAULT 0 NOT NULL,
    updated_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    CONSTRAINT kind_limits_concurrency_check CHECK (((concurrency >= 1) AND (concurrency <= 10000))),
    CONSTRAINT kind_limits_kind_check CHECK (((char_length(kind) >= 1) AND (char_length(kind) <= 100))),
    CONSTRAINT kind_limits_rate_limit_check CHECK ((rate_limit >= 1)),
    CONSTRAINT kind_limits_rate_period_seconds_check CHECK ((rate_period_seconds = ANY (ARRAY[1, 60, 3600]))),
    CONSTRAINT kind_limits_tokens_check CHECK ((tokens >= (0)::double precision)),
    CONSTRAINT limits_something CHECK (((concurrency IS NOT NULL) OR (rate_limit IS NOT NULL))),
    CONSTRAINT rate_has_period CHECK (((rate_limit IS NULL) = (rate_period_seconds IS NULL)))
);


--
-- Name: outbox; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.outbox (
    id bigint NOT NULL,
    task_id uuid NOT NULL,
    priority text NOT NULL,
    available_at timestamp with time zone DEFAULT now() NOT NULL,
    published_at timestamp with time zone,
    publish_attempts integer DEFAULT 0 NOT NULL,
    last_error text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT outbox_priority_check CHECK ((priority = ANY (ARRAY['LOW'::text, 'MEDIUM'::text, 'HIGH'::text])))
);


--
-- Name: outbox_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.outbox ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.outbox_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: schedules; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schedules (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    name text NOT NULL,
    cron text,
    every_seconds integer,
    timezone text DEFAULT 'UTC'::text NOT NULL,
    task jsonb NOT NULL,
    enabled boolean DEFAULT true NOT NULL,
    overlap text DEFAULT 'allow'::text NOT NULL,
    next_run_at timestamp with time zone,
    last_run_at timestamp with time zone,
    last_task_id uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT cron_xor_every CHECK (((cron IS NULL) <> (every_seconds IS NULL))),
    CONSTRAINT next_run_iff_enabled CHECK (((next_run_at IS NOT NULL) = enabled)),
    CONSTRAINT schedules_cron_check CHECK (((char_length(cron) >= 1) AND (char_length(cron) <= 255))),
    CONSTRAINT schedules_every_seconds_check CHECK (((every_seconds >= 1) AND (every_seconds <= 31622400))),
    CONSTRAINT schedules_name_check CHECK (((char_length(name) >= 1) AND (char_length(name) <= 255))),
    CONSTRAINT schedules_overlap_check CHECK ((overlap = ANY (ARRAY['allow'::text, 'skip'::text]))),
    CONSTRAINT schedules_task_check CHECK ((jsonb_typeof(task) = 'object'::text)),
    CONSTRAINT schedules_timezone_check CHECK (((char_length(timezone) >= 1) AND (char_length(timezone) <= 255)))
);


--
-- Name: schema_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_migrations (
    version character varying NOT NULL
);


--
-- Name: stream_listeners; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.stream_listeners (
    listener uuid NOT NULL,
    expires_at timestamp with time zone NOT NULL
);


--
-- Name: task_batches; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.task_batches (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    idempotency_key text NOT NULL,
    request_hash text NOT NULL,
    task_ids uuid[] DEFAULT '{}'::uuid[] NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT task_batches_idempotency_key_check CHECK (((char_length(idempotency_key) >= 1) AND (char_length(idempotency_key) <= 255)))
);


--
-- Name: task_counts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.task_counts (
    status text NOT NULL,
    priority text NOT NULL,
    shard integer NOT NULL,
    n bigint NOT NULL
)
WITH (autovacuum_vacuum_scale_factor='0', autovacuum_vacuum_threshold='1000');


--
-- Name: task_dependencies; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.task_dependencies (
    task_id uuid NOT NULL,
    parent_id uuid NOT NULL
);


--
-- Name: task_events; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.task_events (
    id bigint NOT NULL,
    task_id uuid NOT NULL,
    from_status text,
    status text NOT NULL,
    attempt integer NOT NULL,
    error text,
    created_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL
);


--
-- Name: task_events_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.task_events ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.task_events_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: task_texts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.task_texts (
    task_id uuid NOT NULL,
    created_at timestamp with time zone NOT NULL,
    name text NOT NULL,
    description text
)
WITH (parallel_workers='0');


--
-- Name: tasks; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.tasks (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    name text NOT NULL,
    description text,
    priority text DEFAULT 'MEDIUM'::text NOT NULL,
    status text DEFAULT 'NEW'::text NOT NULL,
    kind text NOT NULL,
    payload jsonb DEFAULT '{}'::jsonb NOT NULL,
    result jsonb,
    error text,
    attempts integer DEFAULT 0 NOT NULL,
    max_attempts integer DEFAULT 3 NOT NULL,
    timeout_seconds integer NOT NULL,
    run_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    cancel_requested_at timestamp with time zone,
    worker_id text,
    lease_expires_at timestamp with time zone,
    idempotency_key text,
    request_hash text,
    callback_url text,
    schedule_id uuid,
    scheduled_for timestamp with time zone,
    progress_fraction double precision,
    progress_message text,
    progress_updated_at timestamp with time zone,
    waiting_on integer DEFAULT 0 NOT NULL,
    queue text DEFAULT 'default'::text NOT NULL,
    CONSTRAINT attempts_within_budget CHECK (((attempts >= 0) AND (attempts <= max_attempts))),
    CONSTRAINT finished_iff_terminal CHECK (((finished_at IS NOT NULL) = (status = ANY (ARRAY['COMPLETED'::text, 'FAILED'::text, 'CANCELLED'::text])))),
    CONSTRAINT idempotency_key_has_hash CHECK (((idempotency_key IS NULL) = (request_hash IS NULL))),
    CONSTRAINT leased_iff_in_progress CHECK (((lease_expires_at IS NOT NULL) = (status = 'IN_PROGRESS'::text))),
    CONSTRAINT progress_complete CHECK ((((progress_fraction IS NULL) = (progress_updated_at IS NULL)) AND ((progress_message IS NULL) OR (progress_fraction IS NOT NULL)))),
    CONSTRAINT result_only_when_completed CHECK (((result IS NULL) OR (status = 'COMPLETED'::text))),
    CONSTRAINT scheduled_for_a_tick CHECK (((schedule_id IS NULL) OR (scheduled_for IS NOT NULL))),
    CONSTRAINT started_when_in_progress CHECK (((status <> 'IN_PROGRESS'::text) OR (started_at IS NOT NULL))),
    CONSTRAINT tasks_callback_url_check CHECK (((char_length(callback_url) >= 1) AND (char_length(callback_url) <= 2048))),
    CONSTRAINT tasks_description_check CHECK ((char_length(description) <= 10000)),
    CONSTRAINT tasks_idempotency_key_check CHECK (((char_length(idempotency_key) >= 1) AND (char_length(idempotency_key) <= 255))),
    CONSTRAINT tasks_kind_check CHECK (((char_length(kind) >= 1) AND (char_length(kind) <= 100))),
    CONSTRAINT tasks_max_attempts_check CHECK (((max_attempts >= 1) AND (max_attempts <= 20))),
    CONSTRAINT tasks_name_check CHECK (((char_length(name) >= 1) AND (char_length(name) <= 255))),
    CONSTRAINT tasks_payload_check CHECK ((jsonb_typeof(payload) = 'object'::text)),
    CONSTRAINT tasks_priority_check CHECK ((priority = ANY (ARRAY['LOW'::text, 'MEDIUM'::text, 'HIGH'::text]))),
    CONSTRAINT tasks_progress_fraction_check CHECK (((progress_fraction >= (0)::double precision) AND (progress_fraction <= (1)::double precision))),
    CONSTRAINT tasks_progress_message_check CHECK ((char_length(progress_message) <= 1000)),
    CONSTRAINT tasks_queue_check CHECK ((queue ~ '^[A-Za-z0-9_.:-]{1,100}$'::text)),
    CONSTRAINT tasks_status_check CHECK ((status = ANY (ARRAY['NEW'::text, 'PENDING'::text, 'IN_PROGRESS'::text, 'COMPLETED'::text, 'FAILED'::text, 'CANCELLED'::text]))),
    CONSTRAINT tasks_timeout_seconds_check CHECK (((timeout_seconds >= 1) AND (timeout_seconds <= 86400))),
    CONSTRAINT tasks_waiting_on_check CHECK ((waiting_on >= 0))
);


--
-- Name: callback_attempts callback_attempts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.callback_attempts
    ADD CONSTRAINT callback_attempts_pkey PRIMARY KEY (id);


--
-- Name: callback_deliveries callback_deliveries_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.callback_deliveries
    ADD CONSTRAINT callback_deliveries_pkey PRIMARY KEY (id);


--
-- Name: kind_limit_waits kind_limit_waits_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.kind_limit_waits
    ADD CONSTRAINT kind_limit_waits_pkey PRIMARY KEY (task_id);


--
-- Name: kind_limits kind_limits_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.kind_limits
    ADD CONSTRAINT kind_limits_pkey PRIMARY KEY (kind);


--
-- Name: outbox outbox_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.outbox
    ADD CONSTRAINT outbox_pkey PRIMARY KEY (id);


--
-- Name: schedules schedules_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schedules
    ADD CONSTRAINT schedules_pkey PRIMARY KEY (id);


--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);


--
-- Name: stream_listeners stream_listeners_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.stream_listeners
    ADD CONSTRAINT stream_listeners_pkey PRIMARY KEY (listener);


--
-- Name: task_batches task_batches_idempotency_key_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.task_batches
    ADD CONSTRAINT task_batches_idempotency_key_key UNIQUE (idempotency_key);


--
-- Name: task_batches task_batches_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.task_batches
    ADD CONSTRAINT task_batches_pkey PRIMARY KEY (id);


--
-- Name: task_counts task_counts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.task_counts
    ADD CONSTRAINT task_counts_pkey PRIMARY KEY (status, priority, shard);


--
-- Name: task_dependencies task_dependencies_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.task_dependencies
    ADD CONSTRAINT task_dependencies_pkey PRIMARY KEY (task_id, parent_id);


--
-- Name: task_events task_events_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.task_events
    ADD CONSTRAINT task_events_pkey PRIMARY KEY (id);


--
-- Name: task_texts task_texts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.task_texts
    ADD CONSTRAINT task_texts_pkey PRIMARY KEY (task_id);


--
-- Name: tasks tasks_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tasks
    ADD CONSTRAINT tasks_pkey PRIMARY KEY (id);


--
-- Name: callback_attempts_delivery_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX callback_attempts_delivery_id ON public.callback_attempts USING btree (delivery_id);


--
-- Name: callback_deliveries_due; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX callback_deliveries_due ON public.callback_deliveries USING btree (next_attempt_at) WHERE (status = 'pending'::text);


--
-- Name: callback_deliveries_task_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX callback_deliveries_task_id ON public.callback_deliveries USING btree (task_id);


--
-- Name: kind_limit_waits_kind_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX kind_limit_waits_kind_idx ON public.kind_limit_waits USING btree (kind);


--
-- Name: outbox_due_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX outbox_due_idx ON public.outbox USING btree (available_at, id) WHERE (published_at IS NULL);


--
-- Name: outbox_published_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX outbox_published_idx ON public.outbox USING btree (published_at) WHERE (published_at IS NOT NULL);


--
-- Name: outbox_task_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX outbox_task_idx ON public.outbox USING btree (task_id);


--
-- Name: schedules_created_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX schedules_created_idx ON public.schedules USING btree (created_at DESC, id DESC);


--
-- Name: schedules_due_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX schedules_due_idx ON public.schedules USING btree (next_run_at) WHERE enabled;


--
-- Name: task_batches_created_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX task_batches_created_idx ON public.task_batches USING btree (created_at);


--
-- Name: task_dependencies_parent_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX task_dependencies_parent_idx ON public.task_dependencies USING btree (parent_id, task_id);


--
-- Name: task_events_created_brin_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX task_events_created_brin_idx ON public.task_events USING brin (created_at) WITH (autosummarize='on');


--
-- Name: task_events_task_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX task_events_task_idx ON public.task_events USING btree (task_id, id);


--
-- Name: task_texts_search_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX task_texts_search_idx ON public.task_texts USING gin (date_trunc('hour'::text, (created_at AT TIME ZONE 'UTC'::text)), (((name || ' '::text) || COALESCE(description, ''::text))) public.gin_trgm_ops);


--
-- Name: tasks_created_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX tasks_created_idx ON public.tasks USING btree (created_at DESC, id DESC);


--
-- Name: tasks_idempotency_created_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX tasks_idempotency_created_idx ON public.tasks USING btree (created_at) WHERE (idempotency_key IS NOT NULL);


--
-- Name: tasks_idempotency_key_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX tasks_idempotency_key_idx ON public.tasks USING btree (idempotency_key) WHERE (idempotency_key IS NOT NULL);


--
-- Name: tasks_lease_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX tasks_lease_idx ON public.tasks USING btree (lease_expires_at) WHERE (status = 'IN_PROGRESS'::text);


--
-- Name: tasks_priority_created_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX tasks_priority_created_idx ON public.tasks USING btree (priority, created_at DESC, id DESC);


--
-- Name: tasks_queue_active_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX tasks_queue_active_idx ON public.tasks USING btree (queue, status) WHERE (status = ANY (ARRAY['NEW'::text, 'PENDING'::text, 'IN_PROGRESS'::text]));


--
-- Name: tasks_queue_created_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX tasks_queue_created_idx ON public.tasks USING btree (queue, created_at DESC, id DESC);


--
-- Name: tasks_running_kind_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX tasks_running_kind_idx ON public.tasks USING btree (kind) WHERE (status = 'IN_PROGRESS'::text);


--
-- Name: tasks_schedule_created_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX tasks_schedule_created_idx ON public.tasks USING btree (schedule_id, created_at DESC, id DESC) WHERE (schedule_id IS NOT NULL);


--
-- Name: tasks_schedule_tick_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX tasks_schedule_tick_idx ON public.tasks USING btree (schedule_id, scheduled_for) WHERE (schedule_id IS NOT NULL);


--
-- Name: tasks_status_created_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX tasks_status_created_idx ON public.tasks USING btree (status, created_at DESC, id DESC);


--
-- Name: tasks_waiting_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX tasks_waiting_idx ON public.tasks USING btree (created_at DESC, id DESC) WHERE ((waiting_on > 0) AND (status = 'NEW'::text));


--
-- Name: tasks tasks_count_on_delete; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER tasks_count_on_delete AFTER DELETE ON public.tasks FOR EACH ROW EXECUTE FUNCTION public.count_task_status();


--
-- Name: tasks tasks_notify_cancel; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER tasks_notify_cancel AFTER UPDATE OF cancel_requested_at ON public.tasks FOR EACH ROW WHEN (((old.cancel_requested_at IS NULL) AND (new.cancel_requested_at IS NOT NULL) AND (new.status = 'IN_PROGRESS'::text))) EXECUTE FUNCTION public.notify_cancel_requested();


--
-- Name: tasks tasks_settle_dependents; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER tasks_settle_dependents AFTER UPDATE ON public.tasks REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.settle_dependents();


--
-- Name: tasks tasks_status_on_change; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER tasks_status_on_change AFTER UPDATE ON public.tasks REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.record_status_changes();


--
-- Name: tasks tasks_status_on_insert; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER tasks_status_on_insert AFTER INSERT ON public.tasks REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.record_status_changes();


--
-- Name: tasks tasks_texts_on_insert; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER tasks_texts_on_insert AFTER INSERT ON public.tasks REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.record_task_texts();


--
-- Name: callback_attempts callback_attempts_delivery_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.callback_attempts
    ADD CONSTRAINT callback_attempts_delivery_id_fkey FOREIGN KEY (delivery_id) REFERENCES public.callback_deliveries(id) ON DELETE CASCADE;


--
-- Name: callback_deliveries callback_deliveries_task_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.callback_deliveries
    ADD CONSTRAINT callback_deliveries_task_id_fkey FOREIGN KEY (task_id) REFERENCES public.tasks(id) ON DELETE CASCADE;


--
-- Name: kind_limit_waits kind_limit_waits_task_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.kind_limit_waits
    ADD CONSTRAINT kind_limit_waits_task_id_fkey FOREIGN KEY (task_id) REFERENCES public.tasks(id) ON DELETE CASCADE;


--
-- Name: outbox outbox_task_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.outbox
    ADD CONSTRAINT outbox_task_id_fkey FOREIGN KEY (task_id) REFERENCES public.tasks(id) ON DELETE CASCADE;


--
-- Name: task_dependencies task_dependencies_parent_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.task_dependencies
    ADD CONSTRAINT task_dependencies_parent_id_fkey FOREIGN KEY (parent_id) REFERENCES public.tasks(id) ON DELETE CASCADE;


--
-- Name: task_dependencies task_dependencies_task_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.task_dependencies
    ADD CONSTRAINT task_dependencies_task_id_fkey FOREIGN KEY (task_id) REFERENCES public.tasks(id) ON DELETE CASCADE;


--
-- Name: task_events task_events_task_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.task_events
    ADD CONSTRAINT task_events_task_id_fkey FOREIGN KEY (task_id) REFERENCES public.tasks(id) ON DELETE CASCADE;


--
-- Name: task_texts task_texts_task_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.task_texts
    ADD CONSTRAINT task_texts_task_id_fkey FOREIGN KEY (task_id) REFERENCES public.tasks(id) ON DELETE CASCADE;


--
-- Name: tasks tasks_schedule_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tasks
    ADD CONSTRAINT tasks_schedule_id_fkey FOREIGN KEY (schedule_id) REFERENCES public.schedules(id) ON DELETE SET NULL;


--
-- PostgreSQL database dump complete
--

\unrestrict dbmate


--
-- Dbmate schema migrations
--

INSERT INTO public.schema_migrations (version) VALUES
    ('20261129000000'),
    ('20261129120000'),
    ('20261129130000'),
    ('20261130090000'),
    ('20261130100000'),
    ('20261130120000'),
    ('20261130130000'),
    ('20261130140000'),
    ('20261130150000'),
    ('20261130160000'),
    ('20261130170000'),
    ('20261201090000');
