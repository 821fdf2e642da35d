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

package console

import (
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"strings"

	"golang.org/x/text/language"
)

// The interface languages: the seeds' languages. Every string of the interface is a key of the
// message catalogs in messages/<tag>.json; TestCatalogsComplete keeps them in step.
var (
	// Simplified Chinese has its own catalog (mainland words, not only other characters): matched
	// to Traditional, zh-CN readers got Taiwan's vocabulary in characters they do not use.
	languages = []language.Tag{language.English, language.TraditionalChinese, language.SimplifiedChinese, language.Danish}
	// langNames are shown in the language switch, each in its own language.
	langNames = map[string]string{"en": "English", "zh-Hant": "繁體中文", "zh-Hans": "简体中文", "da": "Dansk"}
	matcher   = language.NewMatcher(languages)
)

// langCookie holds the language the user picked with the switch; it overrides Accept-Language.
const langCookie = "hookline_lang"

//go:embed messages/*.json
var messageFS embed.FS

// catalogs maps a language tag ("en", "zh-Hant", "zh-Hans", "da") to its messages.
var catalogs = mustLoadCatalogs()

func mustLoadCatalogs() map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, tag := range languages {
		name := tag.String()
		b, err := messageFS.ReadFile(path.Join("messages", name+".json"))
		if err != nil {
			panic(fmt.Sprintf("console: message catalog %s: %v", name, err))
		}
		m := map[string]string{}
		if err := json.Unmarshal(b, &m); err != nil {
			panic(fmt.Sprintf("console: message catalog %s: %v", name, err))
		}
		out[name] = m
	}
	return out
}

// Localizer renders interface strings in one language.
type Localizer struct {
	// Lang is the BCP 47 tag of the language, for <html lang>.
	Lang string
	msgs map[string]string
}

// T returns the message for key, formatted with args (fmt verbs) when given. A key missing from
// the catalog shows as the key itself, so a gap is visible rather than blank; the catalog test
// makes sure no template uses such a key.
func (l Localizer) T(key string, args ...any) string {
	m, ok := l.msgs[key]
	if !ok {
		if m, ok = catalogs["en"][key]; !ok {
			return key
		}
	}
	if len(args) == 0 {
		return m
	}
	return fmt.Sprintf(m, args...)
}

// localizerFor returns the localizer of a supported tag, English for anything else.
func localizerFor(tag string) Localizer {
	if m, ok := catalogs[tag]; ok {
		return Localizer{Lang: tag, msgs: m}
	}
	return Localizer{Lang: "en", msgs: catalogs["en"]}
}

// negotiate picks the language: the switch's cookie when it names a supported language, otherwise
// the best match of Accept-Language, otherwise English.
func negotiate(r *http.Request) Localizer {
	if c, err := r.Cookie(langCookie); err == nil {
		if _, ok := catalogs[c.Value]; ok {
			return localizerFor(c.Value)
		}
	}
	tags, _, err := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	if err != nil || len(tags) == 0 {
		return localizerFor("en")
	}
	_, idx, conf := matcher.Match(tags...)
	if conf == language.No {
		return localizerFor("en")
	}
	return localizerFor(languages[idx].String())
}

// safeNext returns p when it is a path on this site ("/..." but not "//host" or "/\host"), and
// "/" otherwise, so that the language switch cannot be used as an open redirect. A browser drops
// tabs and line breaks from a URL and reads a backslash as a slash (WHATWG URL), so that
// "/<tab>/host" is "//host" to it: p may hold no control character and no backslash anywhere.
func safeNext(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsFunc(p, func(c rune) bool {
		return c < 0x20 || c == 0x7f || c == '\\'
	}) {
		return "/"
	}
	return p
}
