{{ config(post_hook="{{ add_keys(['user_id', 'item_id'], {'ix_last_event_ts': 'last_event_ts'}) }}") }}
{{ assert_realtime_upstream_is_full(source('recsys_state', 'realtime_watermarks')) }}

{#- Candidate generation, one row per user x candidate item: the union of the four generators in
    models/intermediate/candidates (repeat, covisit, intent_pop, global_pop), one score column per
    generator (0 when it did not propose the item) and the list of those that did, plus the typed
    co-visitation sums of every candidate, whichever generator proposed it (covisit_view_view,
    covisit_cart_cart, covisit_buy_buy from int_user_covisit_neighbours; 0 when the item is no
    neighbour of the user's recent items). The generators
    hold exactly the users of this realtime run (every user on a full build), whose rows are
    replaced here (delete+insert on user_id). -#}
with repeat_candidates as (
    select * from {{ ref('int_candidates__repeat') }}
),

covisit_candidates as (
    select * from {{ ref('int_candidates__covisit') }}
),

intent_candidates as (
    select * from {{ ref('int_candidates__intent_pop') }}
),

global_candidates as (
    select * from {{ ref('int_candidates__global_pop') }}
),

neighbours as (
    select * from {{ ref('int_user_covisit_neighbours') }}
),

all_candidates as (
    select
        user_id,
        item_id,
        score as repeat_score,
        null as covisit_score,
        null as intent_pop_score,
        null as global_pop_score,
        last_event_ts
    from repeat_candidates
    union all
    select
        user_id,
        item_id,
        null as repeat_score,
        score as covisit_score,
        null as intent_pop_score,
        null as global_pop_score,
        last_event_ts
    from covisit_candidates
    union all
    select
        user_id,
        item_id,
        null as repeat_score,
        null as covisit_score,
        score as intent_pop_score,
        null as global_pop_score,
        last_event_ts
    from intent_candidates
    union all
    select
        user_id,
        item_id,
        null as repeat_score,
        null as covisit_score,
        null as intent_pop_score,
        score as global_pop_score,
        last_event_ts
    from global_candidates
),

unioned as (
    select
        user_id,
        item_id,
        {{ as_double('coalesce(max(repeat_score), 0)') }} as repeat_score,
        {{ as_double('coalesce(max(covisit_score), 0)') }} as covisit_score,
        {{ as_double('coalesce(max(intent_pop_score), 0)') }} as intent_pop_score,
        {{ as_double('coalesce(max(global_pop_score), 0)') }} as global_pop_score,
        concat_ws(
            ',',
            case when count(repeat_score) > 0 then 'repeat' end,
            case when count(covisit_score) > 0 then 'covisit' end,
            case when count(intent_pop_score) > 0 then 'intent_pop' end,
            case when count(global_pop_score) > 0 then 'global_pop' end
        ) as sources,
        cast(
            (count(repeat_score) > 0) + (count(covisit_score) > 0)
            + (count(intent_pop_score) > 0) + (count(global_pop_score) > 0)
            as signed
        ) as n_sources,
        max(last_event_ts) as last_event_ts
    from all_candidates
    group by user_id, item_id
),

final as (
    select
        unioned.user_id,
        unioned.item_id,
        unioned.repeat_score,
        unioned.covisit_score,
        unioned.intent_pop_score,
        unioned.global_pop_score,
        unioned.sources,
        unioned.n_sources,
        {{ as_double('coalesce(neighbours.score_view_view, 0)') }} as covisit_view_view,
        {{ as_double('coalesce(neighbours.score_cart_cart, 0)') }} as covisit_cart_cart,
        {{ as_double('coalesce(neighbours.score_buy_buy, 0)') }} as covisit_buy_buy,
        unioned.last_event_ts
    from unioned
    left join neighbours on unioned.user_id = neighbours.user_id and unioned.item_id = neighbours.item_id
)

select * from final
