{{ config(post_hook="{{ add_keys(['user_id', 'item_id'], {'ix_last_event_ts': 'last_event_ts'}) }}") }}

{#- Candidate generation, one row per user x candidate item, from four sources:
      repeat     the user's own items: type-weighted (browse 1, fav 2, cart 3, purchase 0.5) and
                 decayed from the user's last event; carted-but-not-bought items get +4 x decay;
      covisit    co-visitation neighbours of the user's last distinct items (0.8^position);
      intent_pop the most popular in-stock items of the session-intent category;
      global_pop the most popular in-stock items overall.
    Incremental run: users whose fct_session_intent.last_event_ts is newer than the newest here
    are recomputed and all their rows replaced (delete+insert on user_id); their events come from
    int_realtime_user_events, which holds every event of (at least) those users. -#}
{%- set watermark = max_in_this('last_event_ts') if realtime_is_incremental() else none %}
{%- set half_life = var('repeat_half_life_hours') | float %}

with session_intent as (
    select * from {{ ref('fct_session_intent') }}
),

events as (
    select * from {{ ref('int_realtime_user_events') }}
),

covisitation as (
    select * from {{ ref('ml_covisitation') }}
),

item_features as (
    select * from {{ ref('dim_items') }}
),

target_users as (
    select user_id, intent_category_id, last_event_ts
    from session_intent
    {%- if watermark is not none %}
    where last_event_ts > '{{ watermark }}'
    {%- endif %}
),

user_item_events as (
    select events.user_id, events.item_id, events.behavior_type, events.event_ts
    from events
    where events.item_id is not null
    {%- if watermark is not none %}
      and events.user_id in (select target_users.user_id from target_users)
    {%- endif %}
),

user_items as (
    select
        user_item_events.user_id,
        user_item_events.item_id,
        sum(
            case user_item_events.behavior_type
                when 'browse' then 1 when 'fav' then 2 when 'cart' then 3 when 'purchase' then 0.5 else 0
            end
            * {{ decay('user_item_events.event_ts', 'target_users.last_event_ts', half_life) }}
        ) as base_score,
        max(user_item_events.event_ts) as last_ts,
        max(case when user_item_events.behavior_type = 'cart' then user_item_events.event_ts end) as last_cart_ts,
        max(case when user_item_events.behavior_type = 'purchase' then user_item_events.event_ts end) as last_purchase_ts,
        max(target_users.last_event_ts) as user_last_event_ts
    from user_item_events
    inner join target_users on target_users.user_id = user_item_events.user_id
    group by user_item_events.user_id, user_item_events.item_id
),

repeat_ranked as (
    select
        user_id,
        item_id,
        score,
        row_number() over (partition by user_id order by score desc, item_id) as rn
    from (
        select
            user_id,
            item_id,
            base_score
            + case
                when last_cart_ts is not null and (last_purchase_ts is null or last_purchase_ts < last_cart_ts)
                    then 4 * {{ decay('last_cart_ts', 'user_last_event_ts', half_life) }}
                else 0
            end as score
        from user_items
    ) as scored
),

repeat_candidates as (
    select user_id, item_id, score
    from repeat_ranked
    where rn <= {{ var('candidates_repeat_k') | int }}
),

recent_sources as (
    select user_id, item_id, rn
    from (
        select user_id, item_id, row_number() over (partition by user_id order by last_ts desc, item_id) as rn
        from user_items
    ) as ranked
    where rn <= {{ var('candidates_covisit_sources') | int }}
),

covisit_candidates as (
    select user_id, item_id, score
    from (
        select
            user_id,
            item_id,
            score,
            row_number() over (partition by user_id order by score desc, item_id) as rn
        from (
            select
                recent_sources.user_id,
                covisitation.similar_item_id as item_id,
                sum(power(0.8, recent_sources.rn - 1) * covisitation.score) as score
            from recent_sources
            inner join covisitation on covisitation.item_id = recent_sources.item_id
            group by recent_sources.user_id, covisitation.similar_item_id
        ) as summed
    ) as ranked
    where rn <= {{ var('candidates_covisit_k') | int }}
),

popular_in_category as (
    select item_id, category_id, score
    from (
        select
            item_id,
            category_id,
            popularity_score / nullif(max(popularity_score) over (partition by category_id), 0) as score,
            row_number() over (partition by category_id order by popularity_score desc, item_id) as rn
        from item_features
        where in_stock = 1
    ) as ranked
    where rn <= {{ var('candidates_intent_k') | int }}
),

intent_candidates as (
    select target_users.user_id, popular_in_category.item_id, coalesce(popular_in_category.score, 0) as score
    from target_users
    inner join popular_in_category on popular_in_category.category_id = target_users.intent_category_id
),

popular_global as (
    select item_id, score
    from (
        select
            item_id,
            popularity_score / nullif(max(popularity_score) over (), 0) as score,
            row_number() over (order by popularity_score desc, item_id) as rn
        from item_features
        where in_stock = 1
    ) as ranked
    where rn <= {{ var('candidates_global_k') | int }}
),

global_candidates as (
    select target_users.user_id, popular_global.item_id, coalesce(popular_global.score, 0) as score
    from target_users
    cross join popular_global
),

all_candidates as (
    select user_id, item_id, score as repeat_score, null as covisit_score, null as intent_pop_score, null as global_pop_score
    from repeat_candidates
    union all
    select user_id, item_id, null, score, null, null from covisit_candidates
    union all
    select user_id, item_id, null, null, score, null from intent_candidates
    union all
    select user_id, item_id, null, null, null, score from global_candidates
),

final as (
    select
        all_candidates.user_id,
        all_candidates.item_id,
        {{ as_double('coalesce(max(all_candidates.repeat_score), 0)') }} as repeat_score,
        {{ as_double('coalesce(max(all_candidates.covisit_score), 0)') }} as covisit_score,
        {{ as_double('coalesce(max(all_candidates.intent_pop_score), 0)') }} as intent_pop_score,
        {{ as_double('coalesce(max(all_candidates.global_pop_score), 0)') }} as global_pop_score,
        concat_ws(
            ',',
            case when count(all_candidates.repeat_score) > 0 then 'repeat' end,
            case when count(all_candidates.covisit_score) > 0 then 'covisit' end,
            case when count(all_candidates.intent_pop_score) > 0 then 'intent_pop' end,
            case when count(all_candidates.global_pop_score) > 0 then 'global_pop' end
        ) as sources,
        cast(
            (count(all_candidates.repeat_score) > 0) + (count(all_candidates.covisit_score) > 0)
            + (count(all_candidates.intent_pop_score) > 0) + (count(all_candidates.global_pop_score) > 0)
            as signed
        ) as n_sources,
        max(target_users.last_event_ts) as last_event_ts
    from all_candidates
    inner join target_users on target_users.user_id = all_candidates.user_id
    group by all_candidates.user_id, all_candidates.item_id
)

select * from final
