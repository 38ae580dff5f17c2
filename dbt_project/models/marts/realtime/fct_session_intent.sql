{{ config(post_hook="{{ add_keys('user_id', {'ix_last_event_ts': 'last_event_ts'}) }}") }}
{{ assert_realtime_upstream_is_full(source('recsys_state', 'realtime_watermarks')) }}

{#- Reads int_realtime_user_events, which holds all events of exactly the users to recompute
    (every user on a full build; on an incremental run those with events after the watermark).
    Their rows are replaced by delete+insert on user_id. -#}
with user_events as (
    select * from {{ ref('int_realtime_user_events') }}
),

-- the user's newest event (ties on time broken by event_id) and so the last session
last_event_ids as (
    select
        user_id,
        max(event_id) as event_id
    from user_events
    where event_ts = user_last_event_ts
    group by user_id
),

last_session as (
    select
        user_events.user_id,
        user_events.session_id,
        user_events.event_ts as last_event_ts
    from user_events
    inner join last_event_ids on user_events.event_id = last_event_ids.event_id
),

session_events as (
    select
        user_events.*,
        row_number() over (
            partition by user_events.user_id order by user_events.event_ts desc, user_events.event_id desc
        ) as pos_in_session_from_end
    from user_events
    inner join last_session
        on user_events.user_id = last_session.user_id and user_events.session_id = last_session.session_id
),

session_stats as (
    select
        user_id,
        min(event_ts) as session_start_ts,
        cast(count(*) as signed) as session_events,
        {{ count_if("behavior_type = 'search'") }} as session_searches
    from session_events
    group by user_id
),

-- category scores of the last session: type weight (event_weights.intent) x 0.8^(position from the end)
category_scores as (
    select
        user_id,
        category_id,
        sum(
            {{ type_weight('behavior_type', 'intent') }} * power(0.8, pos_in_session_from_end - 1)
        ) as score
    from session_events
    where category_id is not null
    group by user_id, category_id
),

session_intent as (
    {{ top_share('category_scores', 'category_id', 'strength') }}
),

session_queries as (
    select
        user_id,
        group_concat(query_text order by last_ts desc, query_text separator ' ') as query_terms
    from (
        select
            user_id,
            query_text,
            last_ts,
            row_number() over (partition by user_id order by last_ts desc, query_text) as rn
        from (
            select
                user_id,
                left(query_text, 100) as query_text,
                max(event_ts) as last_ts
            from session_events
            where query_text is not null
            group by user_id, left(query_text, 100)
        ) as distinct_queries
    ) as ranked
    where rn <= 5
    group by user_id
),

user_items as (
    select
        user_id,
        item_id,
        max(category_id) as category_id,
        max(event_ts) as last_ts,
        max(event_id) as last_event_id,
        max(case when behavior_type = 'cart' then event_ts end) as last_cart_ts,
        max(case when behavior_type = 'purchase' then event_ts end) as last_purchase_ts
    from user_events
    where item_id is not null
    group by user_id, item_id
),

-- the user's distinct items, most recent first (the behaviour sequence the ranker reads)
recent_items as (
    select
        user_id,
        item_id,
        category_id,
        rn
    from (
        select
            user_id,
            item_id,
            category_id,
            row_number() over (partition by user_id order by last_ts desc, last_event_id desc) as rn
        from user_items
    ) as ranked
    where rn <= 20
),

recent_item_lists as (
    select
        user_id,
        group_concat(item_id order by rn separator ',') as last_items
    from recent_items
    group by user_id
),

recent_categories as (
    select
        user_id,
        group_concat(category_id order by category_rn separator ',') as last_categories
    from (
        select
            user_id,
            category_id,
            row_number() over (partition by user_id order by min(rn)) as category_rn
        from recent_items
        where category_id is not null
        group by user_id, category_id
    ) as categories
    where category_rn <= 10
    group by user_id
),

-- fallback intent when the last session has no item event (only searches): the last item's category
last_item_category as (
    select
        user_id,
        category_id
    from recent_items
    where rn = 1
),

carted_not_bought as (
    select
        user_id,
        group_concat(item_id order by last_cart_ts desc, item_id separator ',') as carted_not_bought
    from (
        select
            user_id,
            item_id,
            last_cart_ts,
            row_number() over (partition by user_id order by last_cart_ts desc, item_id) as rn
        from user_items
        where last_cart_ts is not null and (last_purchase_ts is null or last_purchase_ts < last_cart_ts)
    ) as ranked
    where rn <= 20
    group by user_id
),

final as (
    select
        last_session.user_id,
        last_session.session_id,
        session_stats.session_start_ts,
        last_session.last_event_ts,
        session_stats.session_events,
        session_stats.session_searches,
        coalesce(session_intent.category_id, last_item_category.category_id) as intent_category_id,
        {{ as_double("coalesce(session_intent.strength, 0)") }} as intent_strength,
        coalesce(session_queries.query_terms, '') as query_terms,
        coalesce(recent_item_lists.last_items, '') as last_items,
        coalesce(recent_categories.last_categories, '') as last_categories,
        coalesce(carted_not_bought.carted_not_bought, '') as carted_not_bought
    from last_session
    inner join session_stats on last_session.user_id = session_stats.user_id
    left join session_intent on last_session.user_id = session_intent.user_id
    left join last_item_category on last_session.user_id = last_item_category.user_id
    left join session_queries on last_session.user_id = session_queries.user_id
    left join recent_item_lists on last_session.user_id = recent_item_lists.user_id
    left join recent_categories on last_session.user_id = recent_categories.user_id
    left join carted_not_bought on last_session.user_id = carted_not_bought.user_id
)

select * from final
