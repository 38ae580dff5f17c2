{{ config(post_hook=[
    "{{ add_keys('event_id', {'ix_session': ['user_id', 'session_id', 'event_ts', 'event_id'], 'ix_query': ['recompute_query', 'query_norm']}) }}",
    "{{ record_realtime_watermark(realtime_watermark_literal(source('recsys_state', 'realtime_watermarks'))) }}",
]) }}

{#- The events the search marts read in this run: every event of every session that holds a search
    for one of the queries they recompute, so each such query is recomputed over its whole history.
    Which queries: on a full build (first run, --full-refresh, a point-in-time build) every normalised
    query; otherwise the queries of the searches in the sessions (user_id, session_id) that have an
    event after the realtime watermark (an event_id, macros/realtime_state.sql): only an event in one
    of its sessions can change what a query's row says. Searches are read through the staging view
    (no history bound: a query's rows must be the same on a full and an incremental build). The
    post-hook records the watermark this build used (NULL: every query), which the marts' guard
    assert_realtime_upstream_is_full reads. The marts record int_realtime_user_events' newest event
    id, built before this model (its ref below), so nothing this run did not see is marked done.
    query_norm: the normalised query (macro normalize_query) of a search, NULL for any other event
    and for a search whose query normalises to nothing (it still ends the previous search's
    attribution window: the shopper searched again). Keys compare under the utf8mb4_unicode_ci
    collation (case-, width- and accent-insensitive), so spellings it equates are one query,
    written as their smallest binary spelling whatever order they arrive in.
    recompute_query: 1 on the searches of a recomputed query (the other searches of these sessions
    are read only because they end an attribution window). -#}
/* depends_on: {{ ref('int_realtime_user_events') }} */
{%- set watermark = realtime_watermark(source('recsys_state', 'realtime_watermarks')) %}

with events as (
    select * from {{ ref('stg_recsys__user_behavior') }}
),

searches as (
    select
        user_id,
        session_id,
        nullif({{ normalize_query('query_text') }}, '') as query_norm
    from events
    where behavior_type = 'search'
),

{%- if watermark is not none %}

-- the sessions with an event after the watermark, and the queries searched in them
changed_sessions as (
    select distinct
        user_id,
        session_id
    from events
    where event_id > {{ watermark | int }}
),

recomputed_queries as (
    select distinct searches.query_norm
    from searches
    inner join changed_sessions
        on searches.user_id = changed_sessions.user_id and searches.session_id = changed_sessions.session_id
    where searches.query_norm is not null
),
{%- else %}

recomputed_queries as (
    select distinct query_norm
    from searches
    where query_norm is not null
),
{%- endif %}

-- every session with a search for one of them: the queries' whole history
query_sessions as (
    select distinct
        searches.user_id,
        searches.session_id
    from searches
    inner join recomputed_queries on searches.query_norm = recomputed_queries.query_norm
),

session_events as (
    select
        events.event_id,
        events.user_id,
        events.session_id,
        events.item_id,
        events.behavior_type,
        case
            when events.behavior_type = 'search' then nullif({{ normalize_query('events.query_text') }}, '')
        end as query_norm,
        events.event_ts
    from events
    inner join query_sessions
        on events.user_id = query_sessions.user_id and events.session_id = query_sessions.session_id
),

flagged as (
    select
        session_events.*,
        recomputed_queries.query_norm is not null as is_recomputed
    from session_events
    left join recomputed_queries on session_events.query_norm = recomputed_queries.query_norm
),

final as (
    select
        event_id,
        user_id,
        session_id,
        item_id,
        behavior_type,
        -- one spelling per query (the smallest binary one of those the collation equates)
        cast(
            case
                when is_recomputed then min(query_norm collate utf8mb4_bin) over (partition by query_norm)
                else query_norm
            end as char(100)
        ) collate utf8mb4_unicode_ci as query_norm,
        cast(is_recomputed as signed) as recompute_query,
        event_ts
    from flagged
)

select * from final
