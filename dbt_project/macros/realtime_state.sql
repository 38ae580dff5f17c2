{#- The realtime watermark lives in a state table that these macros own, declared as the source
    recsys_state.realtime_watermarks (models/intermediate/realtime/_recsys_state__sources.yml), so
    the lineage shows who reads it; no model reads its own downstream tables by name.
      model_name          a realtime model
      watermark_event_id  for a realtime mart (fct_session_intent, ml_candidates): the newest raw
                          event_id its rows reflect after its last successful run; for
                          int_realtime_user_events: the watermark its last build used (NULL: a full
                          build, every user)
    The watermark is the event id (ingestion order), not the event time: an event backfilled with an
    old timestamp, or one from a fast clock, must not hide other events from the next run.
    Each row is written by the model's own post-hook, i.e. only after that model succeeded (Cosmos
    runs every model in a dbt invocation of its own, so an on-run-end hook could not see them all).
    Point-in-time builds always recompute every user and neither read nor write the state. -#}

{#- The watermark of an incremental realtime run: the oldest watermark over the realtime marts, so
    a mart whose last run failed catches up on the next one. None (= recompute every user) on
    --full-refresh, in a point-in-time build, or when the state lacks a mart or a mart was empty.
    `state` is the source relation, passed in by the model so that its lineage shows it. -#}
{% macro realtime_watermark(state) -%}
    {%- if not execute or flags.FULL_REFRESH or is_point_in_time() -%}{{ return(none) }}{%- endif -%}
    {%- do _ensure_realtime_state(state) -%}
    {%- set marts = realtime_marts() -%}
    {%- set query -%}
        select count(watermark_event_id), min(watermark_event_id) from {{ state }}
        where model_name in ('{{ marts | join("', '") }}')
    {%- endset -%}
    {%- set row = run_query(query).rows[0] -%}
    {%- if row[0] < marts | length -%}{{ return(none) }}{%- endif -%}
    {{ return(row[1]) }}
{%- endmacro %}

{#- The realtime marts: the incremental models tagged realtime (read from the graph, so a new one
    joins the watermark without a list to keep in sync). -#}
{% macro realtime_marts() -%}
    {%- set names = [] -%}
    {%- for node in graph.nodes.values()
        if node.resource_type == 'model' and 'realtime' in node.tags and node.config.materialized == 'incremental' -%}
        {%- do names.append(node.name) -%}
    {%- endfor -%}
    {{ return(names | sort) }}
{%- endmacro %}

{#- Post-hook: store this model's watermark (a SQL expression) in the state table, creating it on
    first use. Marts store (the default) the newest event_id of this run's int_realtime_user_events,
    or, when it is empty (nobody new), the watermark that run used. That event_id may be lower than
    the newest one read (e.g. a duplicate dropped by staging): the next run then recomputes a few
    users again, never fewer. -#}
{% macro record_realtime_watermark(watermark_sql=none) -%}
    {%- if is_point_in_time() -%}
        do 0
    {%- else -%}
        {%- set state = source('recsys_state', 'realtime_watermarks') -%}
        {%- do _ensure_realtime_state(state) -%}
        {%- if watermark_sql is none -%}
            {%- set events = ref('int_realtime_user_events') -%}
            {%- set watermark_sql = 'coalesce((select max(event_id) from ' ~ events ~ '), '
                ~ '(select s.watermark_event_id from ' ~ state ~ " as s where s.model_name = '"
                ~ events.identifier ~ "'))" -%}
        {%- endif %}
        replace into {{ state }} (model_name, watermark_event_id, updated_at)
        select '{{ this.identifier }}', {{ watermark_sql }}, current_timestamp(3)
    {%- endif -%}
{%- endmacro %}

{#- In a realtime mart: a mart built from scratch (first build, dropped table, --full-refresh) must
    read a complete upstream (int_realtime_user_events: every user; int_search_session_events for
    the search marts: every query), else it would hold only the users or queries of the last run.
    Fails with what to run instead. -#}
{% macro assert_realtime_upstream_is_full(state, upstream='int_realtime_user_events') -%}
    {%- if execute and not is_incremental() and not is_point_in_time() -%}
        {%- do _ensure_realtime_state(state) -%}
        {%- set full = run_query(
            "select count(*) from " ~ state
            ~ " where model_name = '" ~ upstream ~ "' and watermark_event_id is null"
        ).rows[0][0] > 0 -%}
        {%- if not full -%}
            {{ exceptions.raise_compiler_error(
                this.identifier ~ " is built from scratch, but " ~ upstream ~ " holds only the rows"
                ~ " of an incremental run: rebuild both, e.g. `dbt build --select +" ~ this.identifier
                ~ " --full-refresh`") }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#- realtime_watermark() as a SQL literal for record_realtime_watermark (NULL: a full build). -#}
{% macro realtime_watermark_literal(state) -%}
    {%- set watermark = realtime_watermark(state) -%}
    {{ return("null" if watermark is none else (watermark | int | string)) }}
{%- endmacro %}

{#- Creates the state table when missing (run_query, not a materialization: dbt's relation cache
    does not know it, so it is never looked up through adapter.get_relation). A table from before
    the event-id watermark (watermark_ts only) gains the column; its NULLs mean one full recompute. -#}
{% macro _ensure_realtime_state(state) -%}
    {%- if execute -%}
        {%- do run_query(
            'create table if not exists ' ~ state ~ ' ('
            ~ 'model_name varchar(64) not null primary key, watermark_event_id bigint null, '
            ~ 'updated_at datetime(3) not null)'
        ) -%}
        {%- do run_query('alter table ' ~ state ~ ' add column if not exists watermark_event_id bigint null') -%}
    {%- endif -%}
{%- endmacro %}
