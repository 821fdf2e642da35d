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

package cli

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"syscall"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// reactivateAnnotation is the annotation `reactivate` sets.
const reactivateAnnotation = hooklinev1.ReactivateAnnotation

// kubeFlags are the flags that choose the cluster and namespace, as kubectl spells them.
type kubeFlags struct {
	kubeconfig string
	context    string
	namespace  string
}

func (k *kubeFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig file")
	fs.StringVar(&k.context, "context", "", "kubeconfig context")
	fs.StringVar(&k.namespace, "n", "", "namespace")
	fs.StringVar(&k.namespace, "namespace", "", "namespace")
}

const kubeFlagsUsage = `  -n, --namespace NS     namespace (default: the namespace of the kubeconfig context, else default)
      --kubeconfig FILE  kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)
      --context NAME     kubeconfig context (default: the current context)
`

// kube is a connection to the cluster.
type kube struct {
	client client.Client
	// namespace is -n, else the context's namespace, else default.
	namespace string
	// host is the API server's address, for error messages.
	host string
	// config is the loaded kubeconfig: its credentials also authenticate to the read API.
	config *rest.Config
}

// connect loads the kubeconfig the way kubectl does (--kubeconfig, else $KUBECONFIG, else
// ~/.kube/config, else the in-cluster config) and builds a client that knows the Webhook type.
func (a *App) connect(k kubeFlags) (*kube, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = k.kubeconfig
	// Read $KUBECONFIG through a.Getenv, so that tests control it; the rest is clientcmd's default.
	rules.Precedence = []string{clientcmd.RecommendedHomeFile}
	rules.WarnIfAllMissing = false
	if env := a.Getenv(clientcmd.RecommendedConfigPathEnvVar); env != "" {
		rules.Precedence = nil
		seen := map[string]bool{}
		for _, p := range filepath.SplitList(env) {
			if p != "" && !seen[p] {
				seen[p] = true
				rules.Precedence = append(rules.Precedence, p)
			}
		}
		rules.WarnIfAllMissing = true
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: k.context}
	overrides.Context.Namespace = k.namespace
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := cc.ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, errors.New("no Kubernetes configuration found: pass --kubeconfig, set $KUBECONFIG or create ~/.kube/config")
		}
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	if ns == "" {
		ns = "default"
	}
	cfg.UserAgent = "hookline-cli/" + Version
	scheme := runtime.NewScheme()
	if err := hooklinev1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("creating Kubernetes client for %s: %w", cfg.Host, err)
	}
	return &kube{client: c, namespace: ns, host: cfg.Host, config: cfg}, nil
}

// explain turns an API error into a message that says what to do.
func (a *App) explain(k *kube, err error, namespace, name string) error {
	switch {
	case err == nil:
		return nil
	case apierrors.IsNotFound(err) && name != "":
		return fmt.Errorf("webhook %s/%s not found (list the namespace's webhooks with: %s status -n %s)", namespace, name, a.Name, namespace)
	case meta.IsNoMatchError(err), apierrors.IsNotFound(err):
		return fmt.Errorf("the Webhook resource (webhooks.%s) is not installed in the cluster at %s: install hookline's CRDs first",
			hooklinev1.GroupVersion.Group, k.host)
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
		return fmt.Errorf("the API server at %s refused the request: %w", k.host, err)
	case isConnectionError(err):
		return fmt.Errorf("cannot reach the Kubernetes API server at %s (check --kubeconfig, $KUBECONFIG and --context): %w", k.host, err)
	}
	return err
}

// isConnectionError reports whether err means nothing answered at the address.
func isConnectionError(err error) bool {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	return errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &dnsErr) ||
		(errors.As(err, &opErr) && opErr.Op == "dial")
}

// objectKey reads the NAME or NAMESPACE/NAME argument; an explicit namespace must agree with -n.
func objectKey(arg, flagNamespace, defaultNamespace string) (client.ObjectKey, error) {
	ns, name, hasNS := strings.Cut(arg, "/")
	if !hasNS {
		return client.ObjectKey{Namespace: defaultNamespace, Name: arg}, nil
	}
	if ns == "" || name == "" || strings.Contains(name, "/") {
		return client.ObjectKey{}, usagef("%q is neither NAME nor NAMESPACE/NAME", arg)
	}
	if flagNamespace != "" && flagNamespace != ns {
		return client.ObjectKey{}, usagef("%q names namespace %s but -n says %s", arg, ns, flagNamespace)
	}
	return client.ObjectKey{Namespace: ns, Name: name}, nil
}
