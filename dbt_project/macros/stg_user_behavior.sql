{#- Staging of raw events, shared by the cut view and the unbounded (label) view.
    Rename ts -> event_ts, lower-case the query, and drop replayed copies: a copy is an event with
    the same user, session, type, item, query and timestamp as one with a smaller event_id.
    NOT EXISTS (instead of a window function) keeps the view mergeable, so filters on user_id or
    event_ts from the models reach the raw indexes (incremental runs stay cheap). -#}
{% macro stg_user_behavior_sql(upper_bound=none) -%}
select
    ub.event_id,
    ub.user_id,
    ub.item_id,
    ub.session_id,
    cast(ub.behavior_type as char(16)) as behavior_type,
    nullif(lower(trim(ub.query_text)), '') as query_text,
    ub.ts as event_ts,
    ub.ingested_at
from {{ source('recsys', 'user_behavior') }} as ub
where not exists (
        select 1
        from {{ source('recsys', 'user_behavior') }} as dup
        where dup.user_id = ub.user_id
          and dup.ts = ub.ts
          and dup.session_id = ub.session_id
          and dup.behavior_type = ub.behavior_type
          and dup.item_id <=> ub.item_id
          and dup.query_text <=> ub.query_text
          and dup.event_id < ub.event_id
    )
{%- if upper_bound is not none %}
  and ub.ts < {{ upper_bound }}
{%- endif %}
{%- endmacro %}
