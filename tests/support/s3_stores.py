"""An :class:`S3ObjectStore` on a bucket of its own, for tests and benches against moto."""

import uuid

from ssbg.infrastructure.storage.s3 import DEFAULT_PART_CONCURRENCY, S3ObjectStore


def s3_store(
    endpoint: str, bucket: str | None = None, *, part_concurrency: int = DEFAULT_PART_CONCURRENCY
) -> S3ObjectStore:
    return S3ObjectStore(
        bucket=bucket or f"ssbg-store-{uuid.uuid4().hex[:12]}",
        endpoint_url=endpoint,
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
        create_bucket=True,
        part_concurrency=part_concurrency,
    )


async def uploads_in_progress(store: S3ObjectStore) -> list[str]:
    """The keys of the bucket's incomplete multipart uploads."""
    client = await store.client()
    response = await client.list_multipart_uploads(Bucket=store.bucket)
    return [upload["Key"] for upload in response.get("Uploads", [])]
