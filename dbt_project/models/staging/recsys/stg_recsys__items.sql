with source as (
    select * from {{ source('recsys', 'items') }}
),

renamed as (
    select
        item_id,
        title,
        category_id,
        category,
        nullif(trim(brand), '') as brand,
        cast(price as decimal(10, 2)) as price,
        cast(in_stock as signed) as in_stock,
        created_ts
    from source
)

select * from renamed
