package kubeapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/internal/kubeapi"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

// TestServer proves that what Start returns is a real API server: it
// validates, defaults and stores objects, authenticates and authorizes
// callers, and signs service-account tokens with the key it was given.
func TestServer(t *testing.T) {
	s := kubeapi.Start(t)
	ns := s.Namespace(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	deployments := s.Client.AppsV1().Deployments(ns)

	t.Run("stores and defaults a valid Deployment", func(t *testing.T) {
		created, err := deployments.Create(ctx, deployment("web", 1), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		got, err := deployments.Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if got.UID != created.UID || got.UID == "" {
			t.Errorf("UID: created %q, got %q", created.UID, got.UID)
		}
		// Defaults the server applies: proof the object went through it.
		if got.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
			t.Errorf("strategy %q, want the server's default RollingUpdate", got.Spec.Strategy.Type)
		}
		if got.Spec.Template.Spec.Containers[0].TerminationMessagePath != corev1.TerminationMessagePathDefault {
			t.Errorf("terminationMessagePath %q not defaulted", got.Spec.Template.Spec.Containers[0].TerminationMessagePath)
		}
	})

	t.Run("rejects negative replicas", func(t *testing.T) {
		_, err := deployments.Create(ctx, deployment("negative", -1), metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.replicas") {
			t.Fatalf("create with replicas -1: %v, want Invalid on spec.replicas", err)
		}
	})

	t.Run("rejects an unknown field with strict validation", func(t *testing.T) {
		body := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"typo"},
			"spec":{"replicaz":1,"selector":{"matchLabels":{"app":"typo"}},
			"template":{"metadata":{"labels":{"app":"typo"}},"spec":{"containers":[{"name":"c","image":"example/c:1"}]}}}}`
		err := s.Client.AppsV1().RESTClient().Post().Namespace(ns).Resource("deployments").
			Param("fieldValidation", "Strict").Body([]byte(body)).Do(ctx).Error()
		if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), `unknown field "spec.replicaz"`) {
			t.Fatalf("create with spec.replicaz: %v, want BadRequest naming the unknown field", err)
		}
		if _, err := deployments.Get(ctx, "typo", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("rejected Deployment was stored: get: %v", err)
		}
	})

	t.Run("authorizes with RBAC", func(t *testing.T) {
		anon := rest.AnonymousClientConfig(s.Config)
		_, err := kubernetes.NewForConfigOrDie(anon).CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
		if !apierrors.IsForbidden(err) {
			t.Errorf("anonymous list secrets: %v, want Forbidden", err)
		}

		// A token the server signs for a fresh service account
		// authenticates (the key pair works) and has no rights.
		sa, err := s.Client.CoreV1().ServiceAccounts(ns).Create(ctx,
			&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "nobody"}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create service account: %v", err)
		}
		tr, err := s.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa.Name,
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}},
			metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("token request: %v", err)
		}
		cfg := rest.AnonymousClientConfig(s.Config)
		cfg.BearerToken = tr.Status.Token
		_, err = kubernetes.NewForConfigOrDie(cfg).CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "system:serviceaccount:"+ns+":nobody") {
			t.Errorf("service account list secrets: %v, want Forbidden for the service account", err)
		}
	})

	t.Run("kubeconfig works for kubectl", func(t *testing.T) {
		out, err := s.Kubectl(ctx, "get", "deployments", "--namespace", ns, "-o", "name")
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(out)); got != "deployment.apps/web" {
			t.Errorf("kubectl get deployments: %q, want deployment.apps/web", got)
		}
	})

	t.Run("namespaces are valid and unique", func(t *testing.T) {
		seen := map[string]bool{ns: true}
		for _, name := range []string{"a/b", strings.Repeat("Long_Name ", 10), "a/b"} {
			t.Run(name, func(t *testing.T) {
				got := s.Namespace(t) // fails the test if the server refuses the name
				if seen[got] {
					t.Errorf("namespace %q given twice", got)
				}
				seen[got] = true
			})
		}
	})
}

func deployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example/c:1"}}},
			},
		},
	}
}
