"""The admission webhook: Kubernetes AdmissionReviews judged by a sigscope policy.

Modules, one job each:

- `engine`: the face of the policy engine the webhook needs (a protocol matching `sigscope.policy`);
- `workloads`: images of every pod-bearing kind with their JSON Pointer paths, and the pinning patch (pure);
- `review`: AdmissionReview in, AdmissionReview out (pure);
- `cache`: verdict and tag caches, in-flight coalescing (in process); `shared`: the Redis verdict cache;
- `verifier`: one request's images → decisions (dedup, parallel, deadline, onError, stale serving);
- `reload`: the policy file and the TLS files, reloaded when they change;
- `metrics`, `audit`: what operators watch; `app`: the ASGI application.
"""
