//! `join_all`: wait for several futures of one task at once (e.g. one Fetch per leader), so
//! their requests are in flight together. Tiny on purpose; the workspace has no futures crate.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;

/// Polls every future until all are done; outputs come back in input order.
pub async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(v) => *output = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_in_input_order() {
        let runtime = compio::runtime::Runtime::new().expect("runtime");
        let out = runtime.block_on(join_all(vec![
            Box::pin(async {
                compio::time::sleep(std::time::Duration::from_millis(20)).await;
                1
            }) as Pin<Box<dyn Future<Output = i32>>>,
            Box::pin(async { 2 }),
        ]));
        assert_eq!(out, vec![1, 2]);
    }
}
