"""The local-stack harness the tools, the benches and the tests share: one way to wait for a condition
(``wait``) and one way to start the one-deployment-per-member stack on free ports in a folder of its own
(``stack``), so chaos, the forgeries, the benches, the demo and the end-to-end tests do not each carry
their own."""
