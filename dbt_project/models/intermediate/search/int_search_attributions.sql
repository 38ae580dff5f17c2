{{ config(post_hook="{{ add_keys('event_id', {'ix_query_item': ['query_norm', 'item_id']}) }}") }}

{#- One row per item event (browse, cart, fav, purchase) attributed to a search of a query the search
    marts recompute in this run. An item event belongs to the most recent search before it in the same
    session (user_id, session_id; ordered by event_ts, then event_id), if it comes at most
    query_attribution_minutes after it. A search whose query normalises to nothing takes its events
    with it (they are attributed to no query), and so does a search of a query not recomputed in this
    run (its own rows stay as they are). -#}
{%- set window_minutes = var('query_attribution_minutes') | float %}

with session_events as (
    select * from {{ ref('int_search_session_events') }}
),

-- the number of searches at or before each event in its session: the ordinal of its search
numbered as (
    select
        session_events.*,
        sum(case when session_events.behavior_type = 'search' then 1 else 0 end) over (
            partition by session_events.user_id, session_events.session_id
            order by session_events.event_ts, session_events.event_id
            rows between unbounded preceding and current row
        ) as search_ordinal
    from session_events
),

searches as (
    select
        user_id,
        session_id,
        search_ordinal,
        event_id as search_event_id,
        query_norm,
        recompute_query,
        event_ts as search_ts
    from numbered
    where behavior_type = 'search'
),

engagements as (
    select
        event_id,
        user_id,
        session_id,
        item_id,
        behavior_type,
        event_ts,
        search_ordinal
    from numbered
    where
        behavior_type in ('browse', 'cart', 'fav', 'purchase')
        and item_id is not null
        and search_ordinal > 0
),

final as (
    select
        engagements.event_id,
        searches.query_norm,
        engagements.item_id,
        engagements.behavior_type,
        engagements.user_id,
        engagements.session_id,
        searches.search_event_id,
        searches.search_ts,
        engagements.event_ts,
        {{ as_double(minutes_between('searches.search_ts', 'engagements.event_ts')) }} as minutes_after_search
    from engagements
    inner join searches
        on
            engagements.user_id = searches.user_id
            and engagements.session_id = searches.session_id
            and engagements.search_ordinal = searches.search_ordinal
    where
        searches.recompute_query = 1
        and searches.query_norm is not null
        and {{ minutes_between('searches.search_ts', 'engagements.event_ts') }} <= {{ window_minutes }}
)

select * from final
