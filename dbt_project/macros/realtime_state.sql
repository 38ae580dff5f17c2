{#- The realtime watermark lives in a state table that these macros own, declared as the source
    recsys_state.realtime_watermarks (models/intermediate/realtime/_recsys_state__sources.yml), so
    the lineage shows who reads it; no model reads its own downstream tables by name.
      model_name    a realtime model
      watermark_ts  for a realtime mart (fct_session_intent, ml_candidates): the newest last_event_ts
                    it holds after its last successful run; for int_realtime_user_events: the
                    watermark its last build used (NULL: a full build, every user)
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
        select count(watermark_ts), min(watermark_ts) from {{ state }}
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
    first use. Marts store the newest last_event_ts they hold (the default). -#}
{% macro record_realtime_watermark(watermark_sql=none) -%}
    {%- if is_point_in_time() -%}
        do 0
    {%- else -%}
        {%- set state = source('recsys_state', 'realtime_watermarks') -%}
        {%- do _ensure_realtime_state(state) -%}
        replace into {{ state }} (model_name, watermark_ts, updated_at)
        select '{{ this.identifier }}', {{ watermark_sql or '(select max(last_event_ts) from ' ~ this ~ ')' }},
            current_timestamp(3)
    {%- endif -%}
{%- endmacro %}

{#- In a realtime mart: a mart built from scratch (first build, dropped table, --full-refresh) must
    read a complete int_realtime_user_events (every user), else it would hold only the users of the
    last run. Fails with what to run instead. -#}
{% macro assert_realtime_upstream_is_full(state) -%}
    {%- if execute and not is_incremental() and not is_point_in_time() -%}
        {%- do _ensure_realtime_state(state) -%}
        {%- set full = run_query(
            "select count(*) from " ~ state
            ~ " where model_name = 'int_realtime_user_events' and watermark_ts is null"
        ).rows[0][0] > 0 -%}
        {%- if not full -%}
            {{ exceptions.raise_compiler_error(
                this.identifier ~ " is built from scratch, but int_realtime_user_events holds only the users"
                ~ " of an incremental run: rebuild both, e.g. `dbt build --select +" ~ this.identifier
                ~ " --full-refresh`") }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#- realtime_watermark() as a SQL literal for record_realtime_watermark (NULL: a full build). -#}
{% macro realtime_watermark_literal(state) -%}
    {%- set watermark = realtime_watermark(state) -%}
    {{ return("null" if watermark is none else "cast('" ~ watermark ~ "' as datetime(3))") }}
{%- endmacro %}

{#- Creates the state table when missing (run_query, not a materialization: dbt's relation cache
    does not know it, so it is never looked up through adapter.get_relation). -#}
{% macro _ensure_realtime_state(state) -%}
    {%- if execute -%}
        {%- do run_query(
            'create table if not exists ' ~ state ~ ' ('
            ~ 'model_name varchar(64) not null primary key, watermark_ts datetime(3) null, '
            ~ 'updated_at datetime(3) not null)'
        ) -%}
    {%- endif -%}
{%- endmacro %}
