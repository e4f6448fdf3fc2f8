//! Work shared out over scoped threads: the JPEG decoder's stages and the network input's resize.

/// `work(index, item)` for every item, each on a scoped thread of its own except the first, which runs on the
/// caller's thread (one thread start fewer); the results in item order, with a panic as `Err`.
pub(crate) fn on_threads<T: Send, R: Send>(
    items: impl IntoIterator<Item = T>,
    work: impl Fn(usize, T) -> R + Sync,
) -> Vec<std::thread::Result<R>> {
    let work = &work;
    std::thread::scope(|s| {
        let mut items = items.into_iter().enumerate();
        let first = items.next();
        let others: Vec<_> = items.map(|(i, item)| s.spawn(move || work(i, item))).collect();
        let first = first.map(|(_, item)| std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(0, item))));
        first.into_iter().chain(others.into_iter().map(|h| h.join())).collect()
    })
}
