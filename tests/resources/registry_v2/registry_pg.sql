--
-- PostgreSQL database dump
--


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
-- Name: headwater; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA headwater;


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: check_results; Type: TABLE; Schema: headwater; Owner: -
--

CREATE TABLE headwater.check_results (
    run_id text NOT NULL,
    view_name text NOT NULL,
    stage text NOT NULL,
    subject text NOT NULL,
    check_name text NOT NULL,
    "position" integer NOT NULL,
    kind text NOT NULL,
    severity text NOT NULL,
    column_names text NOT NULL,
    passed integer NOT NULL,
    action text NOT NULL,
    rows_checked bigint NOT NULL,
    rows_failed bigint NOT NULL,
    message text NOT NULL,
    sample text NOT NULL,
    recorded_at timestamp with time zone NOT NULL
);


--
-- Name: checkpoints; Type: TABLE; Schema: headwater; Owner: -
--

CREATE TABLE headwater.checkpoints (
    name text NOT NULL,
    value text NOT NULL,
    updated_at timestamp with time zone NOT NULL
);


--
-- Name: counters; Type: TABLE; Schema: headwater; Owner: -
--

CREATE TABLE headwater.counters (
    name text NOT NULL,
    value bigint NOT NULL
);


--
-- Name: definitions; Type: TABLE; Schema: headwater; Owner: -
--

CREATE TABLE headwater.definitions (
    kind text NOT NULL,
    name text NOT NULL,
    version integer NOT NULL,
    spec text NOT NULL,
    applied_at timestamp with time zone NOT NULL,
    removed_at timestamp with time zone
);


--
-- Name: fitted_statistics; Type: TABLE; Schema: headwater; Owner: -
--

CREATE TABLE headwater.fitted_statistics (
    view_name text NOT NULL,
    step_key text NOT NULL,
    step text NOT NULL,
    "position" integer NOT NULL,
    fit_start_ms bigint NOT NULL,
    fit_end_ms bigint NOT NULL,
    stats text NOT NULL,
    rows_fitted bigint NOT NULL,
    view_version integer,
    fitted_at timestamp with time zone NOT NULL
);


--
-- Name: meta; Type: TABLE; Schema: headwater; Owner: -
--

CREATE TABLE headwater.meta (
    name text NOT NULL,
    value text NOT NULL
);


--
-- Name: runs; Type: TABLE; Schema: headwater; Owner: -
--

CREATE TABLE headwater.runs (
    id bigint NOT NULL,
    run_id text NOT NULL,
    view_name text NOT NULL,
    kind text NOT NULL,
    status text NOT NULL,
    started_at timestamp with time zone NOT NULL,
    ended_at timestamp with time zone,
    rows_in bigint DEFAULT 0 NOT NULL,
    rows_out bigint DEFAULT 0 NOT NULL,
    error text,
    details text NOT NULL,
    owner text,
    heartbeat_at timestamp with time zone
);


--
-- Name: runs_id_seq; Type: SEQUENCE; Schema: headwater; Owner: -
--

ALTER TABLE headwater.runs ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME headwater.runs_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: source_schemas; Type: TABLE; Schema: headwater; Owner: -
--

CREATE TABLE headwater.source_schemas (
    source_name text NOT NULL,
    arrow_schema bytea NOT NULL,
    updated_at timestamp with time zone NOT NULL
);


--
-- Name: stream_partitions; Type: TABLE; Schema: headwater; Owner: -
--

CREATE TABLE headwater.stream_partitions (
    view_name text NOT NULL,
    topic text NOT NULL,
    kafka_partition integer NOT NULL,
    next_offset bigint NOT NULL,
    meta text NOT NULL,
    state bytea,
    updated_at timestamp with time zone NOT NULL
);


--
-- Name: stream_state_pieces; Type: TABLE; Schema: headwater; Owner: -
--

CREATE TABLE headwater.stream_state_pieces (
    view_name text NOT NULL,
    topic text NOT NULL,
    kafka_partition integer NOT NULL,
    next_offset bigint NOT NULL,
    window_end bigint,
    state bytea NOT NULL
);


--
-- Name: view_schemas; Type: TABLE; Schema: headwater; Owner: -
--

CREATE TABLE headwater.view_schemas (
    view_name text NOT NULL,
    arrow_schema bytea NOT NULL,
    updated_at timestamp with time zone NOT NULL
);


--
-- Data for Name: check_results; Type: TABLE DATA; Schema: headwater; Owner: -
--



--
-- Data for Name: checkpoints; Type: TABLE DATA; Schema: headwater; Owner: -
--

INSERT INTO headwater.checkpoints VALUES ('materialized:user_orders', '{"seq": 1, "until_ms": 1796674130613}', '2026-12-07 20:08:51.467494+00');


--
-- Data for Name: counters; Type: TABLE DATA; Schema: headwater; Owner: -
--

INSERT INTO headwater.counters VALUES ('seq', 1);


--
-- Data for Name: definitions; Type: TABLE DATA; Schema: headwater; Owner: -
--

INSERT INTO headwater.definitions VALUES ('entity', 'user', 1, '{"description":"","join_keys":["user_id"],"kind":"entity","name":"user"}', '2026-12-07 20:08:45.936221+00', NULL);
INSERT INTO headwater.definitions VALUES ('feature_view', 'user_orders', 1, '{"description":"","emit":"final","entity":"user","features":[{"column":"amount","function":"sum","name":"amount_sum"},{"column":null,"function":"count","name":"orders"}],"join_keys":["user_id"],"kind":"feature_view","name":"user_orders","offline":true,"online":true,"shape":"aggregation","sinks":[],"source":"orders","tags":{},"ttl_ms":null,"window":{"kind":"tumbling","size_ms":86400000}}', '2026-12-07 20:08:45.936221+00', NULL);
INSERT INTO headwater.definitions VALUES ('file', 'orders', 1, '{"created_timestamp_field":null,"description":"","format":"parquet","hive_partitioning":null,"kind":"file","name":"orders","options":{},"path":"data/orders.parquet","primary_key":[],"timestamp_field":"ts"}', '2026-12-07 20:08:45.936221+00', NULL);


--
-- Data for Name: fitted_statistics; Type: TABLE DATA; Schema: headwater; Owner: -
--



--
-- Data for Name: meta; Type: TABLE DATA; Schema: headwater; Owner: -
--

INSERT INTO headwater.meta VALUES ('schema_version', '2');


--
-- Data for Name: runs; Type: TABLE DATA; Schema: headwater; Owner: -
--

INSERT INTO headwater.runs OVERRIDING SYSTEM VALUE VALUES (1, '01a2521f8952c5641e01e9507a831927', 'user_orders', 'run', 'success', '2026-12-07 20:08:48.210033+00', '2026-12-07 20:08:48.78769+00', 3, 2, NULL, '{"full_refresh": false, "inserted": 2, "updated": 0, "deleted": 0, "rows_skipped": 0, "rows_quarantined": 0, "seconds": 0.578}', 'vm:14796:42252', '2026-12-07 20:08:48.210033+00');
INSERT INTO headwater.runs OVERRIDING SYSTEM VALUE VALUES (2, '01a2521f92b855d318eb8378fd24a536', 'user_orders', 'materialize', 'success', '2026-12-07 20:08:50.616246+00', '2026-12-07 20:08:51.474966+00', 2, 2, NULL, '{"full_refresh": false, "from_seq": -1, "to_seq": 1}', 'vm:14844:42509', '2026-12-07 20:08:50.616246+00');


--
-- Data for Name: source_schemas; Type: TABLE DATA; Schema: headwater; Owner: -
--

INSERT INTO headwater.source_schemas VALUES ('orders', '\xfffffffff80000001000000000000a000c000600050008000a000000000104000c0000000800080000000400080000000400000003000000900000003c000000040000008cffffff000001031000000020000000040000000000000006000000616d6f756e74000000000600080006000600000000000200c0ffffff0000010a100000001c0000000400000000000000020000007473000008000c0006000800080000000000020004000000070000004574632f55544300100014000800060007000c000000100010000000000001021000000020000000040000000000000007000000757365725f69640008000c0008000700080000000000000140000000', '2026-12-07 20:08:45.954203+00');


--
-- Data for Name: stream_partitions; Type: TABLE DATA; Schema: headwater; Owner: -
--



--
-- Data for Name: stream_state_pieces; Type: TABLE DATA; Schema: headwater; Owner: -
--



--
-- Data for Name: view_schemas; Type: TABLE DATA; Schema: headwater; Owner: -
--

INSERT INTO headwater.view_schemas VALUES ('user_orders', '\xffffffff380100001000000000000a000c000600050008000a000000000104000c0000000800080000000400080000000400000004000000d000000074000000380000000400000050ffffff0000010210000000180000000400000000000000060000006f7264657273000040ffffff000000014000000080ffffff00000103100000002400000004000000000000000a000000616d6f756e745f73756d000000000600080006000600000000000200b8ffffff0000010a100000002800000004000000000000000f0000006576656e745f74696d657374616d700008000c00060008000800000000000200040000000300000055544300100014000800060007000c000000100010000000000001021000000020000000040000000000000007000000757365725f69640008000c0008000700080000000000000140000000', '2026-12-07 20:08:45.950605+00');


--
-- Name: runs_id_seq; Type: SEQUENCE SET; Schema: headwater; Owner: -
--

SELECT pg_catalog.setval('headwater.runs_id_seq', 2, true);


--
-- Name: check_results check_results_pkey; Type: CONSTRAINT; Schema: headwater; Owner: -
--

ALTER TABLE ONLY headwater.check_results
    ADD CONSTRAINT check_results_pkey PRIMARY KEY (run_id, stage, check_name);


--
-- Name: checkpoints checkpoints_pkey; Type: CONSTRAINT; Schema: headwater; Owner: -
--

ALTER TABLE ONLY headwater.checkpoints
    ADD CONSTRAINT checkpoints_pkey PRIMARY KEY (name);


--
-- Name: counters counters_pkey; Type: CONSTRAINT; Schema: headwater; Owner: -
--

ALTER TABLE ONLY headwater.counters
    ADD CONSTRAINT counters_pkey PRIMARY KEY (name);


--
-- Name: definitions definitions_pkey; Type: CONSTRAINT; Schema: headwater; Owner: -
--

ALTER TABLE ONLY headwater.definitions
    ADD CONSTRAINT definitions_pkey PRIMARY KEY (kind, name, version);


--
-- Name: fitted_statistics fitted_statistics_pkey; Type: CONSTRAINT; Schema: headwater; Owner: -
--

ALTER TABLE ONLY headwater.fitted_statistics
    ADD CONSTRAINT fitted_statistics_pkey PRIMARY KEY (view_name, step_key);


--
-- Name: meta meta_pkey; Type: CONSTRAINT; Schema: headwater; Owner: -
--

ALTER TABLE ONLY headwater.meta
    ADD CONSTRAINT meta_pkey PRIMARY KEY (name);


--
-- Name: runs runs_pkey; Type: CONSTRAINT; Schema: headwater; Owner: -
--

ALTER TABLE ONLY headwater.runs
    ADD CONSTRAINT runs_pkey PRIMARY KEY (id);


--
-- Name: runs runs_run_id_key; Type: CONSTRAINT; Schema: headwater; Owner: -
--

ALTER TABLE ONLY headwater.runs
    ADD CONSTRAINT runs_run_id_key UNIQUE (run_id);


--
-- Name: source_schemas source_schemas_pkey; Type: CONSTRAINT; Schema: headwater; Owner: -
--

ALTER TABLE ONLY headwater.source_schemas
    ADD CONSTRAINT source_schemas_pkey PRIMARY KEY (source_name);


--
-- Name: stream_partitions stream_partitions_pkey; Type: CONSTRAINT; Schema: headwater; Owner: -
--

ALTER TABLE ONLY headwater.stream_partitions
    ADD CONSTRAINT stream_partitions_pkey PRIMARY KEY (view_name, topic, kafka_partition);


--
-- Name: stream_state_pieces stream_state_pieces_pkey; Type: CONSTRAINT; Schema: headwater; Owner: -
--

ALTER TABLE ONLY headwater.stream_state_pieces
    ADD CONSTRAINT stream_state_pieces_pkey PRIMARY KEY (view_name, topic, kafka_partition, next_offset);


--
-- Name: view_schemas view_schemas_pkey; Type: CONSTRAINT; Schema: headwater; Owner: -
--

ALTER TABLE ONLY headwater.view_schemas
    ADD CONSTRAINT view_schemas_pkey PRIMARY KEY (view_name);


--
-- Name: check_results_view; Type: INDEX; Schema: headwater; Owner: -
--

CREATE INDEX check_results_view ON headwater.check_results USING btree (view_name, recorded_at);


--
-- Name: runs_view_kind_started; Type: INDEX; Schema: headwater; Owner: -
--

CREATE INDEX runs_view_kind_started ON headwater.runs USING btree (view_name, kind, started_at);


--
-- PostgreSQL database dump complete
--


