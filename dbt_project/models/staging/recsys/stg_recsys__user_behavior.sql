{#- The only event view feature models read. In a point-in-time build (var cut_ts) it stops
    before the cut, so nothing downstream can see the future. -#}
{{ stg_user_behavior_sql(upper_bound=cut_ts_literal() if is_point_in_time() else none) }}
