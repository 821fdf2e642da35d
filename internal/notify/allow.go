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

package notify

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/hookline/hookline/internal/safetext"
)

// AnyAccount is the account key of domains every account may mail.
const AnyAccount = "*"

// AllowedDomains are the recipient domains the operator allows, per account id (AnyAccount: for
// every account). A Webhook's problemNotificationEmails are chosen by the tenant and the e-mail
// goes out from the operator's sender: without this list, the dispatcher would relay mail from
// the operator's domain to any address. A domain matches an address's domain exactly (case
// aside): list subdomains on their own. The zero value allows no domain, so no problem e-mail is
// sent to anyone.
type AllowedDomains map[string][]string

// domainRE is a DNS name of at least two labels: letters, digits and inner hyphens.
var domainRE = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Allows reports whether an address of domain may be mailed about a webhook of account.
func (a AllowedDomains) Allows(account, domain string) bool {
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	if domain == "" {
		return false
	}
	if slices.Contains(a[AnyAccount], domain) {
		return true
	}
	return account != "" && account != AnyAccount && slices.Contains(a[account], domain)
}

// Empty reports whether no domain is allowed.
func (a AllowedDomains) Empty() bool {
	for _, ds := range a {
		if len(ds) > 0 {
			return false
		}
	}
	return true
}

// String returns the list in Set's syntax, one entry per account, accounts sorted.
func (a *AllowedDomains) String() string {
	if a == nil || *a == nil {
		return ""
	}
	accounts := make([]string, 0, len(*a))
	for k := range *a {
		accounts = append(accounts, k)
	}
	sort.Strings(accounts)
	var parts []string
	for _, k := range accounts {
		parts = append(parts, k+"="+strings.Join((*a)[k], ","))
	}
	return strings.Join(parts, ";")
}

// Set adds one flag value: "example.com,example.org" allows the domains for every account,
// "acc-1=example.com,example.org" for account acc-1 only; several entries may be joined with ";"
// and the flag repeated. Domains are lower-cased; a malformed one is an error naming it.
func (a *AllowedDomains) Set(s string) error {
	if *a == nil {
		*a = AllowedDomains{}
	}
	for _, entry := range strings.Split(s, ";") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		account, list := AnyAccount, entry
		if k, v, ok := strings.Cut(entry, "="); ok {
			account, list = strings.TrimSpace(k), v
			if account == "" || strings.IndexFunc(account, safetext.IsControl) >= 0 || strings.ContainsAny(account, " ,") {
				return fmt.Errorf("problem e-mail allowed domains: %q is not an account id", account)
			}
		}
		n := 0
		for _, d := range strings.Split(list, ",") {
			d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
			if d == "" {
				continue
			}
			if len(d) > 253 || !domainRE.MatchString(d) {
				return fmt.Errorf("problem e-mail allowed domains: %q is not a domain name (list exact domains such as example.com)", d)
			}
			if !slices.Contains((*a)[account], d) {
				(*a)[account] = append((*a)[account], d)
			}
			n++
		}
		if n == 0 {
			return fmt.Errorf("problem e-mail allowed domains: entry %q names no domain", entry)
		}
	}
	return nil
}
