{#- The user's current intent category, as the publisher copies it into
    recsys_serving.user_intent_category (the serving reader's fallback for users without a top-N):
    the session-intent category of fct_session_intent. A view, so it is exactly as fresh as
    fct_session_intent (the refresh DAG updates it every few minutes). -#}
with session_intent as (
    select * from {{ ref('fct_session_intent') }}
),

final as (
    select
        user_id,
        intent_category_id as category_id,
        intent_strength as strength,
        last_event_ts
    from session_intent
    where intent_category_id is not null
)

select * from final
