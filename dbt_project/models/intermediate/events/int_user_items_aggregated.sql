{{ config(post_hook="{{ add_keys(['user_id', 'item_id']) }}") }}

{#- Counts and last times per behaviour (macro user_items_aggregate_sql), the hours from each last
    time to the reference time (the cut, else the newest event; NULL when never), and the
    repeat-purchase rhythm of the pair: mean hours between consecutive purchase occasions (distinct
    sessions; NULL with fewer than 2) and how due the next one is (hours since the last purchase /
    that mean gap: about 1 when the usual interval has passed). -#}
with events as (
    select * from {{ ref('int_events_enriched') }}
),

as_of as (
    {{ as_of_sql(ref('int_events_enriched')) }}
),

aggregated as (
    {{ user_items_aggregate_sql('events') }}
),

timed as (
    select
        aggregated.*,
        {{ as_double(hours_between('aggregated.last_browse_ts', 'as_of.as_of_ts')) }} as hours_since_last_browse,
        {{ as_double(hours_between('aggregated.last_cart_ts', 'as_of.as_of_ts')) }} as hours_since_last_cart,
        {{ as_double(hours_between('aggregated.last_fav_ts', 'as_of.as_of_ts')) }} as hours_since_last_fav,
        {{ as_double(hours_between('aggregated.last_purchase_ts', 'as_of.as_of_ts')) }} as hours_since_last_purchase,
        {{ as_double(
            "case when aggregated.n_purchase_sessions >= 2 then "
            ~ hours_between('aggregated.first_purchase_ts', 'aggregated.last_purchase_ts')
            ~ " / (aggregated.n_purchase_sessions - 1) end"
        ) }} as purchase_gap_hours_mean
    from aggregated
    cross join as_of
),

final as (
    select
        timed.*,
        {{ as_double('hours_since_last_purchase / nullif(purchase_gap_hours_mean, 0)') }} as purchase_due_ratio
    from timed
)

select * from final
