{{ config(post_hook="{{ add_keys('event_id', {'ix_user_item_ts': ['user_id', 'item_id', 'event_ts']}) }}") }}

{#- The item events (browse, cart, fav, purchase) of every (user, item) pair that was ever shown to
    that user: all that the outcome marts attribute or call a repeat, indexed on (user_id, item_id,
    event_ts) so that fct_served_outcomes finds each impression's later (and earlier) events with one
    index range instead of scanning the log. -#}
with events as (
    select * from {{ ref('int_events_enriched') }}
),

impressions as (
    select * from {{ ref('stg_recsys__impressions') }}
),

shown_pairs as (
    select distinct
        user_id,
        item_id
    from impressions
    where user_id is not null
),

final as (
    select
        events.event_id,
        events.user_id,
        events.item_id,
        events.behavior_type,
        events.event_ts
    from events
    inner join shown_pairs
        on events.user_id = shown_pairs.user_id and events.item_id = shown_pairs.item_id
    where events.behavior_type in ('browse', 'cart', 'fav', 'purchase')
)

select * from final
