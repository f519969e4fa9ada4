#!/bin/sh
# One-shot set-up of MinIO for Cairn (the minio-setup service of docker-compose.yml). Idempotent.
#  - the artifact bucket, private;
#  - a policy allowing object reads/writes/multipart in that bucket only;
#  - the access key Cairn uses (MINIO_CAIRN_ACCESS_KEY), with that policy, so services never hold root.
set -eu
: "${MINIO_ROOT_USER:?}" "${MINIO_ROOT_PASSWORD:?}" "${MINIO_BUCKET:?}" "${MINIO_CAIRN_ACCESS_KEY:?}" "${MINIO_CAIRN_SECRET_KEY:?}"

mc alias set cairn http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing "cairn/$MINIO_BUCKET"
mc anonymous set none "cairn/$MINIO_BUCKET"

policy=/tmp/cairn-artifacts-policy.json
cat > "$policy" <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
      "Resource": ["arn:aws:s3:::$MINIO_BUCKET"]
    },
    {
      "Effect": "Allow",
      "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
      "Resource": ["arn:aws:s3:::$MINIO_BUCKET/*"]
    }
  ]
}
JSON
mc admin policy create cairn cairn-artifacts "$policy"
mc admin user add cairn "$MINIO_CAIRN_ACCESS_KEY" "$MINIO_CAIRN_SECRET_KEY"
if ! mc admin user info cairn "$MINIO_CAIRN_ACCESS_KEY" | grep -q cairn-artifacts; then
  mc admin policy attach cairn cairn-artifacts --user "$MINIO_CAIRN_ACCESS_KEY"
fi
echo "bucket $MINIO_BUCKET ready for $MINIO_CAIRN_ACCESS_KEY"
