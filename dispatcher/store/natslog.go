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

package store

import (
	"fmt"

	"github.com/go-logr/logr"
)

// natsLogger writes the embedded NATS server's log into the dispatcher's: errors as errors,
// warnings at the default verbosity (a full disk, a slow consumer, a corrupt block are what an
// operator reading the dispatcher's log must see), notices (the start-up banner) at V(1), debug
// lines at V(2).
type natsLogger struct{ log logr.Logger }

func (l natsLogger) Noticef(format string, v ...any) { l.log.V(1).Info(fmt.Sprintf(format, v...)) }
func (l natsLogger) Warnf(format string, v ...any) {
	l.log.Info(fmt.Sprintf(format, v...), "level", "warning")
}
func (l natsLogger) Errorf(format string, v ...any) {
	l.log.Error(fmt.Errorf(format, v...), "Embedded NATS server")
}
func (l natsLogger) Fatalf(format string, v ...any) {
	l.log.Error(fmt.Errorf(format, v...), "Embedded NATS server (fatal)")
}
func (l natsLogger) Debugf(format string, v ...any) { l.log.V(2).Info(fmt.Sprintf(format, v...)) }

// Tracef is never enabled: traces quote protocol messages, that is event bodies.
func (l natsLogger) Tracef(string, ...any) {}
