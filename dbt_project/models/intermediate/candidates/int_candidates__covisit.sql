{{ config(post_hook="{{ add_keys(['user_id', 'item_id']) }}") }}

{#- Co-visitation candidates: the top candidates_covisit_k neighbours per user of
    int_user_covisit_neighbours (the ml_covisitation neighbours of the user's recent items, scores
    summed with a decay over the sources' recency), by the combined score. Only the users of this
    realtime run: every user on a full build. -#}
with neighbours as (
    select * from {{ ref('int_user_covisit_neighbours') }}
),

ranked as (
    select
        user_id,
        item_id,
        score,
        last_event_ts,
        row_number() over (partition by user_id order by score desc, item_id) as rn
    from neighbours
),

final as (
    select
        user_id,
        item_id,
        {{ as_double('score') }} as score,
        last_event_ts
    from ranked
    where rn <= {{ var('candidates_covisit_k') | int }}
)

select * from final
