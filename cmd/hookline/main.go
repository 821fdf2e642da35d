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

// Command hookline posts events to hookline's ingest API and shows and reactivates Webhooks.
// Installed as kubectl-hookline it is the kubectl plugin "kubectl hookline".
package main

import (
	"os"

	"github.com/hookline/hookline/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args))
}
