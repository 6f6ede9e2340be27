"""Entry point of the mlstack Pulumi plugin (PulumiPlugin.yaml): serves mlstack.components as a package."""

from mlstack.components.provider import main

if __name__ == "__main__":
    main()
