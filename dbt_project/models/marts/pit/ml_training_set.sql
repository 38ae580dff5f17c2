{{ config(post_hook="{{ add_keys(['user_id', 'item_id']) }}") }}

{#- Candidates of the users who acted in the label window, with point-in-time features and graded
    labels (3 purchased, 2 carted, 1 clicked or faved, 0 none). Labelled items that are not
    candidates are not here: recall against all labels is computed from ml_labels. -#}
with candidates as (
    select * from {{ ref('ml_candidates') }}
),

labels as (
    select * from {{ ref('ml_labels') }}
),

users as (
    select * from {{ ref('dim_users') }}
),

items as (
    select * from {{ ref('dim_items') }}
),

session_intent as (
    select * from {{ ref('fct_session_intent') }}
),

user_items as (
    select * from {{ ref('int_user_items_aggregated') }}
),

labelled_users as (
    select distinct user_id from labels
),

final as (
    select
        candidates.user_id,
        candidates.item_id,
        candidates.repeat_score,
        candidates.covisit_score,
        candidates.intent_pop_score,
        candidates.global_pop_score,
        candidates.n_sources,
        candidates.sources,
        users.n_browse_1d,
        users.n_browse_7d,
        users.n_browse_30d,
        users.n_cart_7d,
        users.n_cart_30d,
        users.n_fav_30d,
        users.n_purchase_30d,
        users.n_search_7d,
        users.n_sessions_30d,
        users.purchase_rate,
        users.avg_price_viewed,
        users.hours_since_last_event,
        users.top_category_id,
        users.top_category_share,
        items.category_id,
        items.brand,
        items.price,
        items.in_stock,
        items.pop_browse_1d,
        items.pop_browse_7d,
        items.pop_cart_7d,
        items.pop_purchase_7d,
        items.popularity_score,
        items.trend_1d_7d,
        items.view_to_cart_rate,
        items.cart_to_purchase_rate,
        items.price_pct_in_category,
        items.age_days,
        session_intent.intent_category_id,
        session_intent.intent_strength,
        cast(items.category_id <=> session_intent.intent_category_id as signed) as in_intent_category,
        cast(items.category_id <=> users.top_category_id as signed) as in_top_category,
        {{ as_double('items.price * 1e0 / nullif(users.avg_price_viewed, 0)') }} as price_vs_user_avg,
        coalesce(user_items.n_browse, 0) as ui_n_browse,
        coalesce(user_items.n_cart, 0) as ui_n_cart,
        coalesce(user_items.n_fav, 0) as ui_n_fav,
        coalesce(user_items.n_purchase, 0) as ui_n_purchase,
        coalesce(user_items.carted_not_bought, 0) as ui_carted_not_bought,
        {{ as_double('timestampdiff(second, user_items.last_event_ts, session_intent.last_event_ts) / 3600e0') }}
            as ui_hours_since_last,
        coalesce(labels.clicked, 0) as clicked,
        coalesce(labels.carted, 0) as carted,
        coalesce(labels.purchased, 0) as purchased,
        cast(
            case
                when labels.purchased = 1 then 3
                when labels.carted = 1 then 2
                when labels.clicked = 1 or labels.faved = 1 then 1
                else 0
            end as signed
        ) as label
    from candidates
    inner join labelled_users on candidates.user_id = labelled_users.user_id
    inner join users on candidates.user_id = users.user_id
    inner join items on candidates.item_id = items.item_id
    inner join session_intent on candidates.user_id = session_intent.user_id
    left join user_items on candidates.user_id = user_items.user_id and candidates.item_id = user_items.item_id
    left join labels on candidates.user_id = labels.user_id and candidates.item_id = labels.item_id
)

select * from final
