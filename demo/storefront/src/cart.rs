//! In-memory carts keyed by a random cookie id, bounded: when full, the oldest cart
//! is evicted to make room for a new one.

use crate::catalog;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Most units of one product a single request may add.
pub const MAX_QUANTITY_PER_REQUEST: u64 = 1000;
/// Most units of one product a cart may hold.
pub const MAX_LINE_QUANTITY: u64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CartItem {
    pub product_id: u64,
    pub quantity: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cart {
    pub items: Vec<CartItem>,
}

impl Cart {
    pub fn total_cents(&self) -> u64 {
        self.items
            .iter()
            .map(|i| catalog::find(i.product_id).map_or(0, |p| p.price_cents) * i.quantity)
            .sum()
    }

    /// `{"items":[{"product_id":1,"quantity":2}],"total_cents":2598}`
    pub fn to_json(&self) -> String {
        let items: Vec<String> = self
            .items
            .iter()
            .map(|i| {
                format!(
                    "{{\"product_id\":{},\"quantity\":{}}}",
                    i.product_id, i.quantity
                )
            })
            .collect();
        format!(
            "{{\"items\":[{}],\"total_cents\":{}}}",
            items.join(","),
            self.total_cents()
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CartError {
    UnknownProduct,
    BadQuantity,
    LineLimit,
}

/// A cart id as we issue them: 32 lowercase hex characters.
pub fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

pub struct CartStore {
    inner: Mutex<Inner>,
    max_carts: usize,
}

#[derive(Default)]
struct Inner {
    carts: HashMap<String, Cart>,
    /// Creation order, for eviction. Carts are only ever removed by eviction, so this
    /// always holds exactly the keys of `carts`.
    order: VecDeque<String>,
}

impl CartStore {
    pub fn new(max_carts: usize) -> CartStore {
        CartStore {
            inner: Mutex::new(Inner::default()),
            max_carts: max_carts.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere never leaves the map half-updated in a harmful way.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().carts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cart with this id, or an empty cart.
    pub fn get(&self, id: Option<&str>) -> Cart {
        id.and_then(|id| self.lock().carts.get(id).cloned())
            .unwrap_or_default()
    }

    /// Adds `quantity` units of a product to cart `id`. If `id` is None or unknown, a
    /// new cart is created under `new_id()`. Returns the cart's id, whether it was
    /// created, and the cart after the change.
    pub fn add(
        &self,
        id: Option<&str>,
        product_id: u64,
        quantity: u64,
        new_id: impl FnOnce() -> String,
    ) -> Result<(String, bool, Cart), CartError> {
        if catalog::find(product_id).is_none() {
            return Err(CartError::UnknownProduct);
        }
        if quantity == 0 || quantity > MAX_QUANTITY_PER_REQUEST {
            return Err(CartError::BadQuantity);
        }
        let mut inner = self.lock();
        let existing = id
            .filter(|id| inner.carts.contains_key(*id))
            .map(str::to_string);
        if let Some(id) = existing {
            let cart = inner.carts.get_mut(&id).expect("checked above");
            add_line(cart, product_id, quantity)?;
            return Ok((id, false, cart.clone()));
        }
        let mut cart = Cart::default();
        add_line(&mut cart, product_id, quantity)?;
        let mut id = new_id();
        while inner.carts.contains_key(&id) {
            id = format!(
                "{:032x}",
                u128::from_str_radix(&id, 16).unwrap_or(0).wrapping_add(1)
            );
        }
        while inner.carts.len() >= self.max_carts {
            match inner.order.pop_front() {
                Some(old) => {
                    inner.carts.remove(&old);
                }
                None => break,
            }
        }
        inner.carts.insert(id.clone(), cart.clone());
        inner.order.push_back(id.clone());
        Ok((id, true, cart))
    }
}

fn add_line(cart: &mut Cart, product_id: u64, quantity: u64) -> Result<(), CartError> {
    match cart.items.iter_mut().find(|i| i.product_id == product_id) {
        Some(item) => {
            let q = item.quantity + quantity;
            if q > MAX_LINE_QUANTITY {
                return Err(CartError::LineLimit);
            }
            item.quantity = q;
        }
        None => cart.items.push(CartItem {
            product_id,
            quantity,
        }),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> impl FnMut() -> String {
        let mut n = 0u128;
        move || {
            n += 1;
            format!("{n:032x}")
        }
    }

    #[test]
    fn adds_accumulates_and_totals() {
        let store = CartStore::new(10);
        let mut next = ids();
        let (id, created, cart) = store.add(None, 1, 2, &mut next).unwrap();
        assert!(created && valid_id(&id));
        assert_eq!(
            cart.to_json(),
            r#"{"items":[{"product_id":1,"quantity":2}],"total_cents":2598}"#
        );
        let (id2, created, cart) = store.add(Some(&id), 2, 1, &mut next).unwrap();
        assert_eq!((id2.as_str(), created), (id.as_str(), false));
        let (_, _, cart2) = store.add(Some(&id), 1, 3, &mut next).unwrap();
        assert_eq!(cart.total_cents(), 2 * 1299 + 899);
        assert_eq!(
            cart2.items,
            vec![
                CartItem {
                    product_id: 1,
                    quantity: 5
                },
                CartItem {
                    product_id: 2,
                    quantity: 1
                }
            ]
        );
        assert_eq!(store.get(Some(&id)), cart2);
        assert_eq!(store.get(None).to_json(), r#"{"items":[],"total_cents":0}"#);
        assert_eq!(
            store.get(Some("ffffffffffffffffffffffffffffffff")),
            Cart::default()
        );
    }

    #[test]
    fn unknown_cart_id_gets_a_new_cart() {
        let store = CartStore::new(10);
        let (id, created, _) = store
            .add(Some("00000000000000000000000000000abc"), 3, 1, ids())
            .unwrap();
        assert!(created);
        assert_ne!(id, "00000000000000000000000000000abc");
    }

    #[test]
    fn validates_product_and_quantity() {
        let store = CartStore::new(10);
        assert_eq!(
            store.add(None, 99, 1, ids()),
            Err(CartError::UnknownProduct)
        );
        assert_eq!(store.add(None, 1, 0, ids()), Err(CartError::BadQuantity));
        assert_eq!(
            store.add(None, 1, MAX_QUANTITY_PER_REQUEST + 1, ids()),
            Err(CartError::BadQuantity)
        );
        assert!(store.is_empty(), "failed adds create no cart");
        let mut next = ids();
        let (id, _, _) = store
            .add(None, 1, MAX_QUANTITY_PER_REQUEST, &mut next)
            .unwrap();
        for _ in 1..(MAX_LINE_QUANTITY / MAX_QUANTITY_PER_REQUEST) {
            store
                .add(Some(&id), 1, MAX_QUANTITY_PER_REQUEST, &mut next)
                .unwrap();
        }
        assert_eq!(
            store.add(Some(&id), 1, 1, &mut next),
            Err(CartError::LineLimit)
        );
        assert_eq!(store.get(Some(&id)).items[0].quantity, MAX_LINE_QUANTITY);
    }

    #[test]
    fn bounded_evicts_oldest() {
        let store = CartStore::new(3);
        let mut next = ids();
        let made: Vec<String> = (0..5)
            .map(|_| store.add(None, 1, 1, &mut next).unwrap().0)
            .collect();
        assert_eq!(store.len(), 3);
        assert!(store.get(Some(&made[0])).items.is_empty());
        assert!(store.get(Some(&made[1])).items.is_empty());
        assert_eq!(store.get(Some(&made[4])).items.len(), 1);
    }

    #[test]
    fn id_collisions_are_avoided() {
        let store = CartStore::new(10);
        let a = store.add(None, 1, 1, || "0".repeat(32)).unwrap().0;
        let b = store.add(None, 1, 1, || "0".repeat(32)).unwrap().0;
        assert_ne!(a, b);
        assert!(valid_id(&b));
    }
}
