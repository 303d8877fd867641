//! The fixed product catalogue.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Product {
    pub id: u64,
    pub name: &'static str,
    pub price_cents: u64,
}

pub const PRODUCTS: [Product; 6] = [
    Product {
        id: 1,
        name: "Espresso Beans 1kg",
        price_cents: 1299,
    },
    Product {
        id: 2,
        name: "Ceramic Mug",
        price_cents: 899,
    },
    Product {
        id: 3,
        name: "Pour-Over Kettle",
        price_cents: 3499,
    },
    Product {
        id: 4,
        name: "Paper Filters (100)",
        price_cents: 499,
    },
    Product {
        id: 5,
        name: "Hand Grinder",
        price_cents: 5999,
    },
    Product {
        id: 6,
        name: "Travel Tumbler",
        price_cents: 2199,
    },
];

pub fn find(id: u64) -> Option<&'static Product> {
    PRODUCTS.iter().find(|p| p.id == id)
}

pub fn product_json(p: &Product) -> String {
    format!(
        "{{\"id\":{},\"name\":\"{}\",\"price_cents\":{}}}",
        p.id,
        crate::json::escape(p.name),
        p.price_cents
    )
}

pub fn products_json() -> String {
    let items: Vec<String> = PRODUCTS.iter().map(product_json).collect();
    format!("[{}]", items.join(","))
}

/// "12.99"
pub fn format_price(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue() {
        assert_eq!(find(1).unwrap().price_cents, 1299);
        assert!(find(0).is_none() && find(7).is_none());
        let ids: Vec<u64> = PRODUCTS.iter().map(|p| p.id).collect();
        assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
        assert!(products_json()
            .starts_with(r#"[{"id":1,"name":"Espresso Beans 1kg","price_cents":1299},{"id":2,"#));
        assert_eq!(format_price(1299), "12.99");
        assert_eq!(format_price(5), "0.05");
    }
}
