"""The single DynamoDB table: its items and keys, and the repositories over them."""
