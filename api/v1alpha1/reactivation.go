/*
Copyright 2026 The hookline Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
)

// maxReactivationToken is status.lastHandledReactivation's maxLength, in bytes: a value that fits
// is recorded as it is.
const maxReactivationToken = 256

// ReactivationToken is what status.lastHandledReactivation records for a value of the
// hookline.io/reactivate annotation, and what every reader compares it with: the value itself
// when it fits the field (timestamps, ticket numbers), otherwise "sha256:" and the hex SHA-256 of
// the value. Annotations may hold up to 256 KiB, the status field 256 bytes: copying a long value
// would make every status write of the Webhook fail validation. "" stays "" (no request).
func ReactivationToken(value string) string {
	if len(value) <= maxReactivationToken {
		return value
	}
	sum := sha256.Sum256([]byte(value))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ReactivationHandled reports whether status.lastHandledReactivation says that the annotation
// value has been acted on.
func ReactivationHandled(value, lastHandled string) bool {
	return value != "" && ReactivationToken(value) == lastHandled
}
