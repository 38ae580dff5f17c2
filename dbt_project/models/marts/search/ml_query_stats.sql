{{ config(post_hook="{{ add_keys('query_norm') }}") }}
{{ assert_realtime_upstream_is_full(source('recsys_state', 'realtime_watermarks'), 'int_search_session_events') }}

{#- One row per normalised query: how often it is searched, by how many users, in how many sessions
    a search for it was followed by an engagement (an item event attributed to it,
    int_search_attributions), and when it was last searched. The serving layer publishes lists
    only for queries searched often enough. Every recomputed query has a search, so delete+insert on
    query_norm replaces all of them. -#}
with session_events as (
    select * from {{ ref('int_search_session_events') }}
),

attributed as (
    select * from {{ ref('int_search_attributions') }}
),

searches as (
    select
        query_norm,
        cast(count(*) as signed) as n_searches,
        cast(count(distinct user_id) as signed) as n_users,
        max(event_ts) as last_ts
    from session_events
    where behavior_type = 'search' and recompute_query = 1
    group by query_norm
),

engaged as (
    select
        query_norm,
        cast(count(distinct user_id, session_id) as signed) as n_sessions_engaged
    from attributed
    group by query_norm
),

final as (
    select
        searches.query_norm,
        searches.n_searches,
        searches.n_users,
        coalesce(engaged.n_sessions_engaged, 0) as n_sessions_engaged,
        searches.last_ts
    from searches
    left join engaged on searches.query_norm = engaged.query_norm
)

select * from final
